//! Mandarin, as Whisper writes it in Simplified characters: commands (给喜茶付三十六元, 今天花了多少钱, 批准) and amounts, read and said. A profile with `language = "zh"` reads and hears with these.
//!
//! Layout: `amount` reads and says money (三十六块五, 两千五百元, 1.5万);
//! `commands` reads a whole utterance into an [`Intent`](super::Intent),
//! preferring `None` to a guess as the English rules do; `grammar` is what
//! the constrained decoder may write in each dialog state; `reply` reads an
//! answer for the question it answers; `prompt` is what Whisper is told to
//! expect.

mod amount;
mod commands;
mod grammar;
mod prompt;
mod reply;

pub use amount::{
    Amount, amount_rivals, currency_word, read_amount, say_amount, say_count, say_figures,
};
pub use commands::{
    amount_alone, answer_forms, answers_contradict, attempted_command, name_answer,
    partial_payment, payee_alone, read_command, refuses,
};
pub use grammar::grammar;
pub use prompt::whisper_prompt;
pub use reply::{answer_among, code_digits, read_reply};

/// Names in no one's book for the prompt's slots when it must hold no
/// payable name: two payees, one provider (as English's stand-ins).
pub const PROMPT_STAND_INS: [&str; 3] = ["松林小馆", "海湾咖啡", "云雀"];

/// Whether a word (a token's text) holds a number, in characters or figures:
/// how sure Whisper was of an amount is read from these tokens.
pub fn is_number_word(word: &str) -> bool {
    word.chars().any(|c| {
        c.is_ascii_digit() || "零〇一二两三四五六七八九十百千万幺０１２３４５６７８９".contains(c)
    })
}
