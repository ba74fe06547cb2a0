//! The languages a constrained decode may write: a word graph built per dialog state, compiled into token tries the decoder walks.
//!
//! A [`Grammar`] is a graph whose arcs carry a [`WordSet`]: alternatives
//! such as " pay" / " Pay", the payee book's names or the numbers 1-9999,
//! each written as Whisper writes it (a leading space starts a word). Each
//! word set is tokenized once into a [`TokenTrie`], so at any point of a
//! decode the tokens allowed next are the edges of a few trie nodes: the
//! decoder never scans the vocabulary to learn what it may write.
//!
//! A [`Walk`] is where a decode stands: the set of (arc, trie node) cursors
//! the tokens so far can have led to. Sets, not single states, because two
//! arcs may begin with the same token (" Pay Heytea 36" and " Pay 36 yuan").

use std::collections::HashMap;
use std::sync::Arc;

pub type TokenId = i32;

/// Alternatives that fill one arc, under a key naming them (equal keys hold
/// equal words, so a set shared by several states is tokenized once).
#[derive(Debug, Clone)]
pub struct WordSet {
    pub key: String,
    pub words: Vec<String>,
    /// What the words are, for reading a decode back (the payee slot).
    pub slot: Slot,
}

/// What an arc's words stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Words,
    Payee,
    Provider,
    Number,
}

impl WordSet {
    pub fn new(key: impl Into<String>, slot: Slot, words: Vec<String>) -> Arc<WordSet> {
        Arc::new(WordSet {
            key: key.into(),
            words,
            slot,
        })
    }
}

#[derive(Debug, Clone)]
struct Arc_ {
    words: Arc<WordSet>,
    to: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    arcs: Vec<Arc_>,
    /// Nodes reached without a word (an optional part skipped).
    skips: Vec<usize>,
    accept: bool,
}

/// A word graph: node 0 is the start.
#[derive(Debug, Clone)]
pub struct Grammar {
    nodes: Vec<Node>,
}

impl Default for Grammar {
    fn default() -> Self {
        Self::new()
    }
}

impl Grammar {
    pub fn new() -> Self {
        Grammar {
            nodes: vec![Node::default()],
        }
    }

    pub const START: usize = 0;

    pub fn node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    pub fn arc(&mut self, from: usize, words: &Arc<WordSet>, to: usize) {
        if words.words.is_empty() {
            return;
        }
        self.nodes[from].arcs.push(Arc_ {
            words: words.clone(),
            to,
        });
    }

    /// `to` may be reached from `from` without a word: what lies between is optional.
    pub fn skip(&mut self, from: usize, to: usize) {
        if from != to && !self.nodes[from].skips.contains(&to) {
            self.nodes[from].skips.push(to);
        }
    }

    /// A path through `sets` from `from`, ending at a new node it returns.
    pub fn chain(&mut self, from: usize, sets: &[&Arc<WordSet>]) -> usize {
        let mut at = from;
        for set in sets {
            let next = self.node();
            self.arc(at, set, next);
            at = next;
        }
        at
    }

    /// End-of-text is allowed at `node`.
    pub fn accept(&mut self, node: usize) {
        self.nodes[node].accept = true;
    }

    /// Every word sequence of at most `max_words` words from the start to an
    /// accepting node, each word its set's `pick`-th alternative (modulo the
    /// set's size): a walk for tests that the language says only what the
    /// parser reads.
    pub fn sample(
        &self,
        choices: &mut impl FnMut(usize) -> usize,
        max_words: usize,
    ) -> Option<Vec<(String, Slot)>> {
        let mut at = Self::START;
        let mut out = Vec::new();
        while out.len() <= max_words {
            let node = &self.nodes[at];
            let options = node.arcs.len() + node.skips.len() + usize::from(node.accept);
            if options == 0 {
                return None;
            }
            let pick = choices(options);
            if pick >= node.arcs.len() + node.skips.len() {
                return Some(out);
            }
            if pick >= node.arcs.len() {
                at = node.skips[pick - node.arcs.len()];
                continue;
            }
            let arc = &node.arcs[pick];
            let word = &arc.words.words[choices(arc.words.words.len()) % arc.words.words.len()];
            out.push((word.clone(), arc.words.slot));
            at = arc.to;
        }
        None
    }
}

/// The token sequences of one word set, as a trie.
#[derive(Debug, Default)]
pub struct TokenTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Default)]
struct TrieNode {
    edges: Vec<(TokenId, u32)>,
    /// A whole word ends here.
    end: bool,
}

impl TokenTrie {
    fn build(
        words: &[String],
        tokenize: &mut impl FnMut(&str) -> Option<Vec<TokenId>>,
    ) -> TokenTrie {
        let mut trie = TokenTrie {
            nodes: vec![TrieNode::default()],
        };
        for word in words {
            let Some(tokens) = tokenize(word) else {
                continue;
            };
            if tokens.is_empty() {
                continue;
            }
            let mut at = 0usize;
            for token in tokens {
                at = match trie.nodes[at].edges.iter().find(|(t, _)| *t == token) {
                    Some(&(_, child)) => child as usize,
                    None => {
                        trie.nodes.push(TrieNode::default());
                        let child = trie.nodes.len() - 1;
                        trie.nodes[at].edges.push((token, child as u32));
                        child
                    }
                };
            }
            trie.nodes[at].end = true;
        }
        trie
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }
}

/// Tokenized word sets, kept across languages: the numbers are tokenized
/// once per model, the payee book again only when it changes.
#[derive(Default)]
pub struct TrieCache {
    tries: HashMap<String, Arc<TokenTrie>>,
}

impl TrieCache {
    fn get(
        &mut self,
        set: &WordSet,
        tokenize: &mut impl FnMut(&str) -> Option<Vec<TokenId>>,
    ) -> Arc<TokenTrie> {
        if let Some(trie) = self.tries.get(&set.key) {
            return trie.clone();
        }
        let trie = Arc::new(TokenTrie::build(&set.words, tokenize));
        // Book sets are keyed by their names: old books must not pile up.
        if self.tries.len() > 256 {
            self.tries.clear();
        }
        self.tries.insert(set.key.clone(), trie.clone());
        trie
    }
}

/// A grammar with its word sets tokenized: what a decode walks.
pub struct Language {
    arcs: Vec<Vec<(Arc<TokenTrie>, usize, Slot)>>,
    skips: Vec<Vec<usize>>,
    accept: Vec<bool>,
}

impl Language {
    pub fn compile(
        grammar: &Grammar,
        cache: &mut TrieCache,
        mut tokenize: impl FnMut(&str) -> Option<Vec<TokenId>>,
    ) -> Language {
        let arcs = grammar
            .nodes
            .iter()
            .map(|node| {
                node.arcs
                    .iter()
                    .map(|arc| (cache.get(&arc.words, &mut tokenize), arc.to, arc.words.slot))
                    .collect()
            })
            .collect();
        let skips = grammar.nodes.iter().map(|n| n.skips.clone()).collect();
        let accept = grammar.nodes.iter().map(|n| n.accept).collect();
        Language {
            arcs,
            skips,
            accept,
        }
    }

    /// Where a decode stands before its first token.
    pub fn start(&self) -> Walk {
        let mut walk = Walk {
            cursors: Vec::new(),
            accepting: false,
        };
        self.enter(Grammar::START, &mut walk);
        walk
    }

    /// Puts cursors at the roots of `node`'s arcs, and of the nodes it skips to.
    fn enter(&self, node: usize, walk: &mut Walk) {
        let mut entered = vec![node];
        let mut i = 0;
        while i < entered.len() {
            for &next in &self.skips[entered[i]] {
                if !entered.contains(&next) {
                    entered.push(next);
                }
            }
            i += 1;
        }
        for node in entered {
            self.enter_one(node, walk);
        }
    }

    fn enter_one(&self, node: usize, walk: &mut Walk) {
        walk.accepting |= self.accept[node];
        for arc in 0..self.arcs[node].len() {
            let cursor = Cursor {
                node: node as u32,
                arc: arc as u32,
                at: 0,
            };
            if !walk.cursors.contains(&cursor) {
                walk.cursors.push(cursor);
            }
        }
    }

    /// The tokens allowed next, each once, with the slot it writes.
    pub fn allowed(&self, walk: &Walk) -> Vec<(TokenId, Slot)> {
        let mut out: Vec<(TokenId, Slot)> = Vec::new();
        for cursor in &walk.cursors {
            let (trie, _, slot) = &self.arcs[cursor.node as usize][cursor.arc as usize];
            for &(token, _) in &trie.nodes[cursor.at as usize].edges {
                if !out.iter().any(|(t, _)| *t == token) {
                    out.push((token, *slot));
                }
            }
        }
        out
    }

    /// The walk after `token`; empty when the language does not allow it.
    pub fn advance(&self, walk: &Walk, token: TokenId) -> Walk {
        let mut next = Walk {
            cursors: Vec::new(),
            accepting: false,
        };
        for cursor in &walk.cursors {
            let (trie, to, _) = &self.arcs[cursor.node as usize][cursor.arc as usize];
            let Some(&(_, child)) = trie.nodes[cursor.at as usize]
                .edges
                .iter()
                .find(|(t, _)| *t == token)
            else {
                continue;
            };
            let moved = Cursor {
                at: child,
                ..*cursor
            };
            if !trie.nodes[child as usize].edges.is_empty() && !next.cursors.contains(&moved) {
                next.cursors.push(moved);
            }
            if trie.nodes[child as usize].end {
                self.enter(*to, &mut next);
            }
        }
        next
    }

    /// Whether `tokens` is a whole sentence of the language.
    pub fn accepts(&self, tokens: &[TokenId]) -> bool {
        let mut walk = self.start();
        for &token in tokens {
            walk = self.advance(&walk, token);
            if walk.is_dead() {
                return false;
            }
        }
        walk.accepting
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    node: u32,
    arc: u32,
    at: u32,
}

/// Where a decode stands in a [`Language`].
#[derive(Debug, Clone)]
pub struct Walk {
    cursors: Vec<Cursor>,
    /// End-of-text may come now.
    pub accepting: bool,
}

impl Walk {
    /// Nothing more may be written, and the text so far is no sentence.
    pub fn is_dead(&self) -> bool {
        self.cursors.is_empty() && !self.accepting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes as tokens: the automaton is about structure, not Whisper's vocabulary.
    fn bytes(word: &str) -> Option<Vec<TokenId>> {
        Some(word.bytes().map(TokenId::from).collect())
    }

    fn ids(text: &str) -> Vec<TokenId> {
        text.bytes().map(TokenId::from).collect()
    }

    fn words(key: &str, words: &[&str]) -> Arc<WordSet> {
        WordSet::new(
            key,
            Slot::Words,
            words.iter().map(|w| w.to_string()).collect(),
        )
    }

    fn pay_language() -> Language {
        let mut g = Grammar::new();
        let verb = words("verb", &[" Pay"]);
        let payee = WordSet::new("payees", Slot::Payee, vec![" Bob".into(), " Bobby".into()]);
        let amount = words("amount", &[" 5", " 50"]);
        let end = words("end", &["."]);
        // " Pay Bob 5." and " Pay 5 to Bob.": two arcs from the verb.
        let after_verb = g.chain(Grammar::START, &[&verb]);
        let done = g.chain(after_verb, &[&payee, &amount, &end]);
        g.accept(done);
        let to = words("to", &[" to"]);
        let done2 = g.chain(after_verb, &[&amount, &to, &payee, &end]);
        g.accept(done2);
        Language::compile(&g, &mut TrieCache::default(), bytes)
    }

    #[test]
    fn the_language_accepts_its_sentences_and_nothing_else() {
        let lang = pay_language();
        assert!(lang.accepts(&ids(" Pay Bob 5.")));
        assert!(lang.accepts(&ids(" Pay Bobby 50.")));
        assert!(lang.accepts(&ids(" Pay 50 to Bob.")));
        assert!(
            !lang.accepts(&ids(" Pay Bob 5")),
            "end-of-text only where the language ends"
        );
        assert!(!lang.accepts(&ids(" Pay Alice 5.")));
        assert!(!lang.accepts(&ids(" Pay 5 Bob.")));
    }

    #[test]
    fn the_allowed_tokens_come_from_the_tries_not_the_vocabulary() {
        let lang = pay_language();
        let mut walk = lang.start();
        for &t in &ids(" Pay") {
            walk = lang.advance(&walk, t);
        }
        // After the verb: a payee's space or an amount's space, the same token once.
        let allowed = lang.allowed(&walk);
        assert_eq!(allowed.len(), 1);
        walk = lang.advance(&walk, TokenId::from(b' '));
        let mut next: Vec<TokenId> = lang.allowed(&walk).iter().map(|(t, _)| *t).collect();
        next.sort();
        assert_eq!(next, vec![TokenId::from(b'5'), TokenId::from(b'B')]);
        assert!(!walk.accepting);
    }

    #[test]
    fn a_word_set_shared_by_two_languages_is_tokenized_once() {
        let mut cache = TrieCache::default();
        let mut calls = 0;
        let numbers = words("numbers", &[" 1", " 2", " 3"]);
        let mut g = Grammar::new();
        let end = g.chain(Grammar::START, &[&numbers]);
        g.accept(end);
        for _ in 0..2 {
            Language::compile(&g, &mut cache, |w| {
                calls += 1;
                bytes(w)
            });
        }
        assert_eq!(calls, 3);
    }
}
