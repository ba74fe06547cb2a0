//! Mandarin, as Whisper writes it in Simplified characters: commands (给喜茶付三十六元, 今天花了多少钱, 批准) and amounts, read and said. The pieces of the Mandarin language, which no profile chooses until its hearing is whole (issue 25).
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

pub use amount::{Amount, currency_word, read_amount, say_amount, say_count, say_figures};
pub use commands::{amount_alone, payee_alone, read_command};
pub use grammar::grammar;
pub use prompt::whisper_prompt;
pub use reply::read_reply;
