//! Decoder loops of our own over whisper.cpp's state: the free decode, then the same encoder output read again, token by token, held to a [`Language`] or teacher-forced on candidates.
//!
//! whisper.cpp's `full()` computes the mel and the encoder output here; its
//! own decode would take the prompt as one batch and write the logits of
//! every prompt token (203 KiB each, twice: 27 to 54 MiB resident for a
//! prompt), so the free decode is ours too, feeding the prefix in short
//! batches ([`PREFIX_BATCH`]). A second reading costs decoder steps only.
//! Every probability here is the model's own, before any constraint: a
//! constrained decode picks among the allowed tokens but reports how much
//! the model believed each one, so a forced reading of chatter shows up as
//! the unlikely text it is.

use whisper_rs::{WhisperContext, WhisperState};

use super::AsrError;
use super::automaton::{Language, Slot, TokenId, Walk};

/// One reading of the utterance: its tokens and the model's belief in each.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub tokens: Vec<TokenId>,
    /// Natural log of the unconstrained probability of each token, and of
    /// the end-of-text that closes the reading.
    pub log_probs: Vec<f32>,
    /// What each token writes (the payee's tokens are `Slot::Payee`).
    pub slots: Vec<Slot>,
    pub text: String,
}

impl Reading {
    /// Mean log probability per token (end-of-text included).
    pub fn mean_log_prob(&self) -> f32 {
        if self.log_probs.is_empty() {
            return f32::NEG_INFINITY;
        }
        self.log_probs.iter().sum::<f32>() / self.log_probs.len() as f32
    }

    /// The least probability among the tokens of `slot` (`None` without such tokens).
    pub fn least_probability(&self, slot: Slot) -> Option<f32> {
        self.slots
            .iter()
            .zip(&self.log_probs)
            .filter(|(s, _)| **s == slot)
            .map(|(_, lp)| lp.exp())
            .reduce(f32::min)
    }
}

/// Tokens the decoder takes in one call when it catches up on a sequence
/// (the prompt, mostly): whisper.cpp computes and keeps the logits of every
/// token of a call, 51,864 floats each, so a short batch keeps that small.
/// Measured on tiny.en, one clip: the prompt's cost fell from 27-54 MiB
/// (one batch) to 5-6 MiB (README, "A model for small memory").
pub const PREFIX_BATCH: usize = 16;

/// What the free decode heard: each token written (end-of-text left out)
/// with the probability the model gave it, and the probability that the
/// clip held no speech at all.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeReading {
    pub tokens: Vec<(TokenId, f32)>,
    pub no_speech: f32,
}

/// The tokens the free decode never writes, as Whisper's decoders suppress
/// them with our settings (no timestamps): every special token after
/// end-of-text; end-of-text and a lone space as the first token; and the
/// symbols that are never speech ("[", "♪", "(("...: Whisper's own list).
pub struct Suppressed {
    never: Vec<TokenId>,
    not_first: Vec<TokenId>,
    eot: TokenId,
}

/// Whisper's non-speech symbols, suppressed alone and after a space.
#[rustfmt::skip]
const NON_SPEECH: &[&str] = &[
    "\"", "#", "(", ")", "*", "+", "/", ":", ";", "<", "=", ">", "@", "[", "\\", "]", "^",
    "_", "`", "{", "|", "}", "~", "「", "」", "『", "』", "<<", ">>", "<<<", ">>>", "--",
    "---", "-(", "-[", "('", "(\"", "((", "))", "(((", ")))", "[[", "]]", "{{", "}}", "♪♪",
    "♪♪♪", "♩", "♪", "♫", "♬", "♭", "♮", "♯",
];

impl Suppressed {
    /// Looks the symbols up in the model's vocabulary (each as one token).
    pub fn new(context: &WhisperContext) -> Self {
        let eot = context.token_eot();
        let mut wanted: Vec<Vec<u8>> = Vec::new();
        for symbol in NON_SPEECH {
            wanted.push(symbol.as_bytes().to_vec());
            wanted.push(format!(" {symbol}").into_bytes());
        }
        wanted.push(b" -".to_vec());
        wanted.push(b" '".to_vec());
        let never = (0..eot)
            .filter(|&id| {
                context
                    .token_to_bytes(id)
                    .is_ok_and(|bytes| wanted.iter().any(|w| w.as_slice() == bytes))
            })
            .collect();
        let space = (0..eot).find(|&id| context.token_to_bytes(id).is_ok_and(|b| b == b" "));
        Suppressed {
            never,
            not_first: std::iter::once(eot).chain(space).collect(),
            eot,
        }
    }

    /// Sets the logits of what may not be written at `step` to minus infinity.
    fn apply(&self, logits: &mut [f32], step: usize) {
        let special = (self.eot as usize + 1).min(logits.len());
        logits[special..].fill(f32::NEG_INFINITY);
        let first = if step == 0 { &self.not_first[..] } else { &[] };
        for &token in self.never.iter().chain(first) {
            if let Some(logit) = logits.get_mut(token as usize) {
                *logit = f32::NEG_INFINITY;
            }
        }
    }
}

/// The decoder over one utterance's encoder output.
pub struct Session<'a> {
    context: &'a WhisperContext,
    state: &'a mut WhisperState,
    /// What whisper.cpp put before the text: the previous-text marker and
    /// the prompt, start-of-transcript, language and task, no-timestamps.
    prefix: Vec<TokenId>,
    /// The tokens whose keys and values the state's cache holds, in order.
    cached: Vec<TokenId>,
    /// The state's logits belong to `cached` (the last decode was its last token).
    logits_fresh: bool,
    eot: TokenId,
    /// Threads for a call of many tokens (one token is too little to share).
    batch_threads: usize,
    /// Decoder calls made: the cost of a reading.
    pub calls: u32,
}

impl<'a> Session<'a> {
    /// `prefix_in_cache`: the state's cache already holds `prefix` at
    /// positions 0.. (a greedy `full()` leaves it there, as its first
    /// decoder's sequence): the reading starts without decoding it again.
    pub fn new(
        context: &'a WhisperContext,
        state: &'a mut WhisperState,
        prefix: Vec<TokenId>,
        prefix_in_cache: bool,
        batch_threads: usize,
    ) -> Self {
        let eot = context.token_eot();
        let cached = if prefix_in_cache {
            prefix.clone()
        } else {
            Vec::new()
        };
        Session {
            context,
            state,
            prefix,
            cached,
            logits_fresh: false,
            eot,
            batch_threads: batch_threads.max(1),
            calls: 0,
        }
    }

    /// The free decode: greedy, each token the likeliest the model writes
    /// (see [`Suppressed`]), ending at end-of-text or after the token at
    /// `max_tokens` (whisper.cpp's `max_tokens` as `full()` counts it).
    pub fn free(
        &mut self,
        suppressed: &Suppressed,
        max_tokens: usize,
    ) -> Result<FreeReading, AsrError> {
        let no_speech = self.no_speech_probability()?;
        let mut written: Vec<TokenId> = self.prefix.clone();
        let mut tokens = Vec::new();
        let most = (self.context.n_text_ctx() / 2 - 4).max(1) as usize;
        let mut logits = Vec::new();
        for step in 0..most {
            // The logits alone: the partition sum next_after adds is not needed here.
            let raw = self.logits_of(written.clone())?;
            logits.clear();
            logits.extend_from_slice(raw);
            suppressed.apply(&mut logits, step);
            let Some((best, probability)) = likeliest(&logits) else {
                break;
            };
            if best == self.eot {
                break;
            }
            written.push(best);
            tokens.push((best, probability));
            if step >= max_tokens {
                break;
            }
        }
        Ok(FreeReading { tokens, no_speech })
    }

    /// The probability of the no-speech token right after
    /// start-of-transcript, as Whisper reads it: over the whole vocabulary,
    /// before anything is suppressed.
    fn no_speech_probability(&mut self) -> Result<f32, AsrError> {
        let sot = self.context.token_sot();
        let Some(at) = self.prefix.iter().position(|t| *t == sot) else {
            return Ok(0.0);
        };
        let no_speech = self.context.token_nosp() as usize;
        let logits = self.logits_of(self.prefix[..=at].to_vec())?;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
        Ok(logits
            .get(no_speech)
            .map_or(0.0, |logit| (logit - max).exp() / sum))
    }

    /// The log-softmax of the next token after `text` (the prefix is added),
    /// as (logits, log of the partition sum): log p(t) = logits[t] - lse.
    fn next_after(&mut self, text: &[TokenId]) -> Result<(&[f32], f32), AsrError> {
        let mut wanted = Vec::with_capacity(self.prefix.len() + text.len());
        wanted.extend_from_slice(&self.prefix);
        wanted.extend_from_slice(text);
        let eot = self.eot;
        let logits = self.logits_of(wanted)?;
        Ok((logits, log_sum_exp(logits, eot)))
    }

    /// The logits of the token after `wanted`, a whole sequence from the
    /// decoder's first position.
    fn logits_of(&mut self, wanted: Vec<TokenId>) -> Result<&[f32], AsrError> {
        let common = self
            .cached
            .iter()
            .zip(&wanted)
            .take_while(|(a, b)| a == b)
            .count();
        if !(self.logits_fresh && common == wanted.len() && self.cached.len() == wanted.len()) {
            // Keep what the cache shares with the wanted sequence, decode the
            // rest but its last token in batches of PREFIX_BATCH, then the
            // last token alone: whisper.cpp's logits are those of a call's
            // first row, so the last token must be decoded by itself to be read.
            // One thread for one token: too little work to share, and a
            // second thread only waits on the first (on a busy machine, for
            // its turn on a core: measured 850 ms a token instead of 2.4).
            let Some(last) = wanted.len().checked_sub(1) else {
                return Err(AsrError::NothingToDecode);
            };
            let mut at = common.min(last);
            while at < last {
                let end = (at + PREFIX_BATCH).min(last);
                let threads = if end - at > 1 { self.batch_threads } else { 1 };
                self.state.decode(&wanted[at..end], at, threads)?;
                self.calls += 1;
                at = end;
            }
            self.state.decode(&wanted[last..], last, 1)?;
            self.calls += 1;
            self.cached = wanted;
            self.logits_fresh = true;
        }
        Ok(self.state.get_logits()?)
    }

    /// The reading held to `language` the model believes most, by a beam of
    /// `beam` hypotheses: at each step every hypothesis is extended by its
    /// `beam` likeliest allowed tokens (end-of-text only where the language
    /// ends) and the `beam` likeliest extensions go on. A beam, not greedy
    /// choice, because a name's first token decides little: " Me" and
    /// " China" both begin book names, and only the next tokens tell.
    /// `None` when no hypothesis ends within `max_tokens`.
    pub fn constrained(
        &mut self,
        language: &Language,
        max_tokens: usize,
        beam: usize,
    ) -> Result<Option<Reading>, AsrError> {
        struct Hypothesis {
            reading: Reading,
            walk: Walk,
            sum: f32,
        }
        let beam = beam.max(1);
        let mut alive = vec![Hypothesis {
            reading: Reading {
                tokens: Vec::new(),
                log_probs: Vec::new(),
                slots: Vec::new(),
                text: String::new(),
            },
            walk: language.start(),
            sum: 0.0,
        }];
        let mut finished: Vec<Reading> = Vec::new();
        let eot = self.eot;
        for _ in 0..=max_tokens {
            let mut grown: Vec<Hypothesis> = Vec::new();
            for hypothesis in &alive {
                let allowed = language.allowed(&hypothesis.walk);
                let (logits, lse) = self.next_after(&hypothesis.reading.tokens)?;
                let mut options: Vec<(Option<(TokenId, Slot)>, f32)> = allowed
                    .iter()
                    .filter_map(|&(token, slot)| {
                        let logit = *logits.get(token as usize)?;
                        Some((Some((token, slot)), logit - lse))
                    })
                    .collect();
                // The text must say something before it may end.
                if hypothesis.walk.accepting && !hypothesis.reading.tokens.is_empty() {
                    let logit = logits
                        .get(eot as usize)
                        .copied()
                        .unwrap_or(f32::NEG_INFINITY);
                    options.push((None, logit - lse));
                }
                options.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (choice, log_prob) in options.into_iter().take(beam) {
                    let mut reading = hypothesis.reading.clone();
                    reading.log_probs.push(log_prob);
                    match choice {
                        None => finished.push(reading),
                        Some((token, slot)) => {
                            reading.tokens.push(token);
                            reading.slots.push(slot);
                            let walk = language.advance(&hypothesis.walk, token);
                            grown.push(Hypothesis {
                                reading,
                                walk,
                                sum: hypothesis.sum + log_prob,
                            });
                        }
                    }
                }
            }
            grown.sort_by(|a, b| b.sum.total_cmp(&a.sum));
            grown.truncate(beam);
            // The best finished reading cannot be beaten by one already less
            // likely in sum than it (each further token only lowers a sum).
            let best_finished = finished
                .iter()
                .map(|r| r.log_probs.iter().sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max);
            grown.retain(|h| h.sum > best_finished);
            // Hypotheses sharing their beginning share the decoder's cache.
            grown.sort_by(|a, b| a.reading.tokens.cmp(&b.reading.tokens));
            alive = grown;
            if alive.is_empty() {
                break;
            }
        }
        let best = finished.into_iter().max_by(|a, b| {
            a.log_probs
                .iter()
                .sum::<f32>()
                .total_cmp(&b.log_probs.iter().sum::<f32>())
        });
        Ok(best.map(|mut reading| {
            reading.text = self.text_of(&reading.tokens);
            reading
        }))
    }

    /// The model's log-likelihood of `tokens` then end-of-text, each token
    /// teacher-forced on the one before: one decoder call per token not yet
    /// in the cache (candidates sharing a beginning share its calls).
    pub fn score(&mut self, tokens: &[TokenId]) -> Result<Reading, AsrError> {
        let mut log_probs = Vec::with_capacity(tokens.len() + 1);
        for i in 0..=tokens.len() {
            let next = tokens.get(i).copied().unwrap_or(self.eot);
            let (logits, lse) = self.next_after(&tokens[..i])?;
            let logit = logits
                .get(next as usize)
                .copied()
                .unwrap_or(f32::NEG_INFINITY);
            log_probs.push(logit - lse);
        }
        Ok(Reading {
            tokens: tokens.to_vec(),
            log_probs,
            slots: vec![Slot::Words; tokens.len()],
            text: self.text_of(tokens),
        })
    }

    /// Candidates that share a beginning, scored from where they part:
    /// the log-likelihood of each ending (then end-of-text) after `shared`,
    /// teacher-forced. Only the `shortlist` endings whose first token the
    /// model believes most are scored in full (the rest are not returned):
    /// a candidate whose first token is unlikely is not the one said.
    /// Returns (index into `endings`, log-likelihood), best first.
    pub fn score_endings(
        &mut self,
        shared: &[TokenId],
        endings: &[Vec<TokenId>],
        shortlist: usize,
    ) -> Result<Vec<(usize, f32)>, AsrError> {
        let (logits, lse) = self.next_after(shared)?;
        let first = |ending: &Vec<TokenId>| {
            ending
                .first()
                .and_then(|t| logits.get(*t as usize))
                .map_or(f32::NEG_INFINITY, |logit| logit - lse)
        };
        let mut ranked: Vec<(usize, f32)> = endings
            .iter()
            .enumerate()
            .filter(|(_, ending)| !ending.is_empty())
            .map(|(i, ending)| (i, first(ending)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(shortlist);
        // In token order, so that endings sharing a beginning share the cache.
        ranked.sort_by(|a, b| endings[a.0].cmp(&endings[b.0]));
        let mut text = shared.to_vec();
        for (i, sum) in &mut ranked {
            let ending = &endings[*i];
            for at in 1..=ending.len() {
                text.truncate(shared.len());
                text.extend_from_slice(&ending[..at]);
                let next = ending.get(at).copied().unwrap_or(self.eot);
                let (logits, lse) = self.next_after(&text)?;
                *sum += logits
                    .get(next as usize)
                    .map_or(f32::NEG_INFINITY, |logit| logit - lse);
            }
        }
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked)
    }

    /// The text of tokens, as Whisper writes them.
    pub fn text_of(&self, tokens: &[TokenId]) -> String {
        text_of(self.context, tokens)
    }
}

/// The text of tokens, as Whisper writes them.
pub fn text_of(context: &WhisperContext, tokens: &[TokenId]) -> String {
    let mut bytes = Vec::new();
    for &token in tokens {
        if let Ok(piece) = context.token_to_bytes(token) {
            bytes.extend_from_slice(piece);
        }
    }
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// The likeliest token and its probability under the softmax of `logits`
/// (suppressed ones at minus infinity); `None` if every one is suppressed.
fn likeliest(logits: &[f32]) -> Option<(TokenId, f32)> {
    let (best, max) =
        logits
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bm), (i, l)| {
                if l > bm { (i, l) } else { (bi, bm) }
            });
    if !max.is_finite() {
        return None;
    }
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    Some((TokenId::try_from(best).ok()?, 1.0 / sum))
}

/// Log of the softmax's partition sum over what can be written: the text
/// tokens and end-of-text (the special tokens above it are never written,
/// as whisper.cpp's own sampling suppresses them).
fn log_sum_exp(logits: &[f32], eot: TokenId) -> f32 {
    let writable = &logits[..logits.len().min(eot as usize + 1)];
    let max = writable.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f32 = writable.iter().map(|l| (l - max).exp()).sum();
    max + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_decode_takes_the_likeliest_token_with_its_probability() {
        let logits = [0.0f32, 2f32.ln(), f32::NEG_INFINITY, 0.0];
        let (token, probability) = likeliest(&logits).unwrap();
        assert_eq!(token, 1);
        // e^ln2 / (1 + 2 + 0 + 1)
        assert!((probability - 0.5).abs() < 1e-6, "{probability}");
        assert_eq!(likeliest(&[f32::NEG_INFINITY; 3]), None);
    }

    #[test]
    fn the_free_decode_writes_no_special_token_and_ends_only_after_saying_something() {
        // eot is 5; 2 is a non-speech symbol; 3 a lone space.
        let suppressed = Suppressed {
            never: vec![2],
            not_first: vec![5, 3],
            eot: 5,
        };
        let mut first = vec![1.0f32; 9];
        suppressed.apply(&mut first, 0);
        let allowed = |logits: &[f32]| -> Vec<usize> {
            (0..logits.len())
                .filter(|&i| logits[i].is_finite())
                .collect()
        };
        assert_eq!(allowed(&first), vec![0, 1, 4]);
        let mut later = vec![1.0f32; 9];
        suppressed.apply(&mut later, 1);
        assert_eq!(allowed(&later), vec![0, 1, 3, 4, 5]);
    }

    #[test]
    fn the_partition_sum_leaves_out_the_special_tokens() {
        let logits = [0.0f32, 0.0, 0.0, 100.0];
        // eot is token 2: the 100 after it is a special token, never written.
        let lse = log_sum_exp(&logits, 2);
        assert!((lse - 3f32.ln()).abs() < 1e-5);
    }

    #[test]
    fn a_readings_belief_is_its_mean_log_probability() {
        let reading = Reading {
            tokens: vec![1, 2],
            log_probs: vec![-0.5, -1.5, -1.0],
            slots: vec![Slot::Words, Slot::Payee],
            text: "x".into(),
        };
        assert!((reading.mean_log_prob() + 1.0).abs() < 1e-6);
        assert!(
            (reading.least_probability(Slot::Payee).unwrap_or(0.0) - (-1.5f32).exp()).abs() < 1e-6
        );
        assert_eq!(reading.least_probability(Slot::Number), None);
    }
}
