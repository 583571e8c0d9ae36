//! Banned passwords: common passwords and an organisation's own words, found *inside* a new
//! password rather than only as the whole of it.
//!
//! A password is normalised before it is searched: lower case, the usual look-alikes folded into
//! their letters (`P@ssw0rd` reads `password`), and a character repeated in a row read once
//! (`Passsword` reads like `Password`). A banned word is then found anywhere in it, exactly or,
//! for words of [`FUZZY_MIN_CHARS`] letters or more, with one letter changed, left out or put in
//! (`Pasword`, `Passwurd`, `Passworxd`).
//!
//! Finding a banned word does not refuse the password by itself: a passphrase may hold a common
//! word and still be strong. What counts is what is left once every banned word found is taken
//! out: it must be worth [`MIN_POINTS_BESIDE_BANNED`] points on its own, where each letter is a
//! point, each distinct run of digits one point, and any symbols one point together. Digits and
//! symbols count little because they are what people add to a common word (`Welcome2026!`).
//! `Welkom2026!!Welkom` keeps `2026!!` (2 points) and is refused; `Mijn fiets staat bij het
//! station, welkom thuis` keeps plenty and passes.

use std::collections::HashSet;
use std::ops::Range;

/// Common passwords, compiled in; `policy.banned_file` adds an organisation's own.
const BUILT_IN: &str = include_str!("banned.txt");

/// Entries with fewer letters than this ban nothing a length rule does not.
const MIN_WORD_CHARS: usize = 3;

/// Banned words at least this long (after normalisation) are also found with one letter
/// changed, left out or put in. Shorter words would then match too many others (`another`
/// would hold `mother`).
const FUZZY_MIN_CHARS: usize = 7;

/// What a password must be worth without its banned words. Microsoft Entra asks 5 points but
/// counts each banned word as one and every other character as one, so `P@ssw0rd-2026-2027!x`
/// passes there; here digits and symbols count by the run, and it does not.
pub const MIN_POINTS_BESIDE_BANNED: usize = 5;

/// Characters that stand in for a letter in the usual substitutions, and the letter. `l` and `i`
/// become one letter because `1`, `!` and `|` stand for either; that a banned word matches a
/// few more look-alikes is harmless.
fn fold(c: char) -> char {
    match c {
        '@' | '4' => 'a',
        '3' => 'e',
        '1' | '!' | '|' | 'l' => 'i',
        '0' => 'o',
        '$' | '5' => 's',
        '7' => 't',
        c => c,
    }
}

/// A normalised text and, for each of its characters, the range of original characters it
/// stands for (a repeated character stands for the whole run).
struct Normalised {
    chars: Vec<char>,
    spans: Vec<Range<usize>>,
}

fn normalise(text: &str) -> Normalised {
    let mut out = Normalised {
        chars: Vec::new(),
        spans: Vec::new(),
    };
    for (i, original) in text.chars().enumerate() {
        // Lower-casing may give more than one character (İ); all stand for the one original.
        for c in original.to_lowercase().map(fold) {
            match (out.chars.last(), out.spans.last_mut()) {
                (Some(&last), Some(span)) if last == c => span.end = i + 1,
                _ => {
                    out.chars.push(c);
                    out.spans.push(i..i + 1);
                }
            }
        }
    }
    out
}

/// The banned words, normalised.
#[derive(Clone, Default)]
pub struct BannedList {
    words: Vec<Vec<char>>,
}

impl std::fmt::Debug for BannedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BannedList({} words)", self.words.len())
    }
}

impl BannedList {
    /// The built-in list plus `extra` lines (one password or word each; `#` starts a comment
    /// line).
    pub fn new<'a>(extra: impl IntoIterator<Item = &'a str>) -> Self {
        let mut seen = HashSet::new();
        let words = BUILT_IN
            .lines()
            .chain(extra)
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(core)
            .filter(|word| seen.insert(word.clone()))
            .collect();
        Self { words }
    }

    #[cfg(test)]
    fn with_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            words: words.into_iter().filter_map(core).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether `password` is refused: it holds a banned word and what is left without the
    /// banned words is worth less than [`MIN_POINTS_BESIDE_BANNED`].
    pub fn refuses(&self, password: &str) -> bool {
        let found = self.find(password);
        !found.is_empty() && points_beside(password, &found) < MIN_POINTS_BESIDE_BANNED
    }

    /// The ranges of `password`'s characters (char indices) that are banned words. Ranges may
    /// overlap.
    pub fn find(&self, password: &str) -> Vec<Range<usize>> {
        let text = normalise(password);
        let mut found = Vec::new();
        for word in &self.words {
            for hit in occurrences(&text.chars, word) {
                found.push(text.spans[hit.start].start..text.spans[hit.end - 1].end);
            }
        }
        found
    }
}

/// A banned entry's normal form: the part from the first to the last letter, normalised.
/// `None` for entries with fewer than three letters, which would ban nothing a length rule does
/// not.
fn core(entry: &str) -> Option<Vec<char>> {
    let lower = entry.to_lowercase();
    let word = lower.trim_matches(|c: char| !c.is_alphabetic());
    let chars = normalise(word).chars;
    (chars.len() >= MIN_WORD_CHARS).then_some(chars)
}

/// Where `word` occurs in `text`: exactly, or for a long word within one edit. A window is
/// matched by its common prefix and suffix with the word: one changed letter leaves `m - 1` of
/// the `m` letters in place, one left out or one put in leaves all the word's letters in place
/// around the gap. An extra letter at either end is no edit of the word but a neighbour, so put-in
/// letters are looked for inside only.
fn occurrences(text: &[char], word: &[char]) -> Vec<Range<usize>> {
    let m = word.len();
    let fuzzy = m >= FUZZY_MIN_CHARS;
    let mut hits = Vec::new();
    for start in 0..text.len() {
        let rest = &text[start..];
        // Every reading needs the word's first letter in place, or (for a long word whose first
        // letter was changed or left out) its second letter at the first or second place: most
        // places are passed over on one or two comparisons.
        let first = rest[0] == word[0];
        if !first && !(fuzzy && (rest[0] == word[1] || rest.get(1) == Some(&word[1]))) {
            continue;
        }
        if rest.len() >= m {
            let window = &rest[..m];
            let prefix = common_prefix(window, word);
            if prefix == m || (fuzzy && prefix + common_suffix(window, word) >= m - 1) {
                hits.push(start..start + m);
                continue;
            }
        }
        if !fuzzy {
            continue;
        }
        // One letter left out: a window of m - 1 holding the word's head and tail.
        if rest.len() >= m - 1 {
            let window = &rest[..m - 1];
            if common_prefix(window, word) + common_suffix(window, word) >= m - 1 {
                hits.push(start..start + m - 1);
                continue;
            }
        }
        // One letter put in, not at either end.
        if first && rest.len() > m {
            let window = &rest[..=m];
            let prefix = common_prefix(window, word);
            let suffix = common_suffix(window, word);
            if suffix >= 1 && prefix + suffix >= m {
                hits.push(start..start + m + 1);
            }
        }
    }
    hits
}

fn common_prefix(a: &[char], b: &[char]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn common_suffix(a: &[char], b: &[char]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// What `password` is worth outside the `banned` ranges: a point per letter (a letter repeated
/// in a row counts once), a point per distinct run of digits, and one point for any symbols.
fn points_beside(password: &str, banned: &[Range<usize>]) -> usize {
    let mut letters = 0;
    let mut digit_runs = HashSet::new();
    let mut symbols = false;
    let mut run = String::new();
    let mut last_letter = None;
    let kept = password
        .chars()
        .enumerate()
        .map(|(i, c)| (!banned.iter().any(|r| r.contains(&i))).then_some(c));
    // A banned word between two runs ends both: `2026welkom2026` keeps one run, counted once.
    for c in kept.chain([None]) {
        match c {
            Some(c) if c.is_ascii_digit() => {
                run.push(c);
                last_letter = None;
                continue;
            }
            Some(c) if c.is_alphabetic() => {
                let c = c.to_lowercase().next();
                if last_letter != c {
                    letters += 1;
                }
                last_letter = c;
            }
            Some(c) if !c.is_whitespace() => {
                symbols = true;
                last_letter = None;
            }
            _ => last_letter = None,
        }
        if !run.is_empty() {
            digit_runs.insert(std::mem::take(&mut run));
        }
    }
    letters + digit_runs.len() + usize::from(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contoso() -> BannedList {
        BannedList::new(["Contoso"])
    }

    #[test]
    fn normalising_folds_look_alikes_case_and_repeats() {
        let n = normalise("P@$$w00rrD");
        assert_eq!(n.chars.iter().collect::<String>(), "pasword");
        // Each normal character knows the original characters it stands for.
        assert_eq!(n.spans[2], 2..4, "$$ is one s");
        assert_eq!(n.spans.last(), Some(&(9..10)));
        assert_eq!(normalise("İx").spans, [0..1, 0..1, 1..2]);
    }

    #[test]
    fn a_common_password_with_decoration_is_refused() {
        let list = contoso();
        for password in [
            "password",
            "P@ssw0rd2024!",
            "Pa$$w0rd",
            "Welcome1!",
            "Qwerty123!",
            "w3lc0m3",
            "@dmin2024",
            "1etmein",
            "Summer2025!",
            "!!Winter99",
            "CONTOSO#1",
            "c0nt0$0",
            "Wachtwoord1!",
        ] {
            assert!(list.refuses(password), "{password} should be refused");
        }
    }

    #[test]
    fn banned_words_inside_are_found() {
        let list = contoso();
        // The examples: an extra letter, a repeated word, years and symbols around.
        for password in [
            "P@ssw0rd-2026-2027!x",
            "xPassword2026!",
            "Welkom2026!!Welkom",
            "C0ntos0Blank12",
            "xpassword",
            "2026Welkom2026Welkom",
        ] {
            assert!(list.refuses(password), "{password} should be refused");
        }
        let found = list.find("xPassword2026!");
        assert!(found.contains(&(1..9)), "{found:?}");
        assert!(
            found.iter().all(|r| r.start >= 1 && r.end <= 9),
            "{found:?}"
        );
    }

    #[test]
    fn one_edit_is_tolerated_in_long_words() {
        let list = contoso();
        for password in [
            "Passwrd2026!",   // a letter left out
            "Passwurd2026!",  // one changed
            "Passwoxrd2026!", // one put in
            "Passssword2026", // repeats read once
            "Contosso99!",
            "Kontoso-26!",
        ] {
            assert!(list.refuses(password), "{password} should be refused");
        }
        // Two edits are another word; short words match only exactly.
        assert!(list.find("Pxsswxrd").is_empty());
        let short = BannedList::with_words(["summer"]);
        assert_eq!(
            short.find("Sumer-Sunmer"),
            vec![0..5],
            "sumer is looked for exactly only"
        );
    }

    #[test]
    fn an_extra_letter_at_an_end_is_a_neighbour_not_part_of_the_word() {
        let list = BannedList::new(["contoso"]);
        // `contoso` found as 1..8 exactly; the `x` before it stays a point of its own.
        let found = list.find("xContoso");
        assert!(found.contains(&(1..8)), "{found:?}");
        assert!(!found.iter().any(|r| r.start == 0), "{found:?}");
    }

    #[test]
    fn a_passphrase_holding_a_banned_word_passes_on_the_rest() {
        let list = contoso();
        for password in [
            "Mijn fiets staat bij het station, welkom thuis",
            "my password is safe",
            "passwords are long",
            "Contoso-Harbour-Tram-82",
            "Velvet-Harbour-Tram-82",
        ] {
            assert!(!list.refuses(password), "{password} should pass");
        }
        assert!(!list.find("Contoso-Harbour-Tram-82").is_empty());
        // Nothing banned: nothing to refuse here (the strength rule judges the rest).
        for password in ["12345678", "!!!!", "", "Zq8-x!3f"] {
            assert!(!list.refuses(password), "{password:?}");
        }
    }

    #[test]
    fn points_beside_count_letters_digit_runs_and_symbols() {
        let list = contoso();
        let points = |p: &str| points_beside(p, &list.find(p));
        assert_eq!(points("P@ssw0rd-2026-2027!x"), 4, "x, 2026, 2027, symbols");
        assert_eq!(points("Welkom2026!!Welkom"), 2);
        assert_eq!(points("C0ntos0Blank12"), 1, "blank is on the built-in list");
        assert_eq!(points("2026Welkom2026"), 1, "one run of digits, twice");
        assert_eq!(points("Welkomaaaaaa"), 1, "a repeated letter counts once");
        assert_eq!(points("Contoso-Harbour"), 8);
    }

    #[test]
    fn built_in_list_is_modest_and_every_line_counts() {
        let list = BannedList::new([]);
        assert!((200..2000).contains(&list.len()), "{}", list.len());
        for line in BUILT_IN
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            assert!(core(line).is_some(), "{line:?} bans nothing");
            assert!(list.refuses(line), "{line:?}");
        }
        let comments = BannedList::new(["# a comment", "", "ab"]);
        assert_eq!(comments.len(), list.len());
    }
}
