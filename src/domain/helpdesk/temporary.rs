//! Temporary passwords an operator reads out on the phone: capitalised words from a fixed
//! built-in list and a two-digit group, joined by dashes (`Tiger-Piano-47-Cedar-Robin`).
//!
//! Each word is one of 256 (8 bits), the digits are two of 2–9 (6 bits), and the digit group
//! stands at one of `words + 1` places: four words give 32 + 6 + log2(5) ≈ 40.3 bits. That is
//! ample for a password AD makes the user change at the next sign-in and whose guessing AD's
//! lockout stops after a few tries. AD's complexity rule asks for three of upper case, lower
//! case, digits and symbols: every password has all four. The list has no word with `l` or
//! starting with `I` or `O`, and the digits leave out 0 and 1, so nothing on the card can be
//! misread as another character.

use rand::seq::IndexedRandom;
use zeroize::Zeroizing;

const WORDS: &str = include_str!("words.txt");

/// Fewer words would fall below 40 bits.
pub const MIN_WORDS: usize = 4;

const DIGITS: &[u8] = b"23456789";

fn words() -> Vec<&'static str> {
    WORDS.lines().filter(|w| !w.is_empty()).collect()
}

/// Bits of entropy of a password of `n` words.
pub fn entropy_bits(n: usize) -> f64 {
    let per_word = (words().len() as f64).log2();
    let digits = 2.0 * (DIGITS.len() as f64).log2();
    n as f64 * per_word + digits + ((n + 1) as f64).log2()
}

/// A temporary password of at least `min_len` characters and [`MIN_WORDS`] words that contains
/// none of `avoid`'s names: AD refuses a password holding the account name or a part of the
/// display name of three characters or more, compared without case.
pub fn temporary_password(min_len: usize, avoid: &[&str]) -> Zeroizing<String> {
    let list = words();
    let mut rng = rand::rng();
    let banned: Vec<String> = avoid
        .iter()
        .flat_map(|name| name.split([',', '.', '-', '_', '#', ' ', '\t']))
        .chain(avoid.iter().copied())
        .filter(|part| part.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect();
    loop {
        let mut groups: Vec<String> = Vec::new();
        while groups.len() < MIN_WORDS
            || groups.iter().map(|g| g.len() + 1).sum::<usize>() + 2 < min_len
        {
            let word = list.choose(&mut rng).expect("a word list");
            let mut chars = word.chars();
            let first = chars.next().expect("no empty word").to_ascii_uppercase();
            groups.push(std::iter::once(first).chain(chars).collect());
        }
        let digits: String = (0..2)
            .map(|_| char::from(*DIGITS.choose(&mut rng).expect("digits")))
            .collect();
        let at = rand::Rng::random_range(&mut rng, 0..=groups.len());
        groups.insert(at, digits);
        let password = Zeroizing::new(groups.join("-"));
        let lower = password.to_lowercase();
        if !banned.iter().any(|b| lower.contains(b.as_str())) {
            return password;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_list_is_fixed_unambiguous_and_256_long() {
        let list = words();
        assert_eq!(list.len(), 256);
        let unique: std::collections::BTreeSet<_> = list.iter().collect();
        assert_eq!(unique.len(), 256, "no word twice");
        for w in list {
            assert!(w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
            assert!(!w.contains('l') && !w.starts_with(['i', 'o']), "{w}");
            assert!((4..=6).contains(&w.len()), "{w}");
        }
    }

    #[test]
    fn passwords_meet_ad_complexity_with_no_look_alikes_and_enough_entropy() {
        assert!(
            entropy_bits(MIN_WORDS) > 40.0,
            "{}",
            entropy_bits(MIN_WORDS)
        );
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let p = temporary_password(16, &[]);
            assert!(p.len() >= 16, "{}", *p);
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(p.bytes().any(|b| b.is_ascii_digit()));
            assert!(p.bytes().any(|b| !b.is_ascii_alphanumeric()));
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']), "{}", *p);
            let groups: Vec<_> = p.split('-').collect();
            assert_eq!(groups.len(), MIN_WORDS + 1, "{}", *p);
            assert_eq!(
                groups
                    .iter()
                    .filter(|g| g.bytes().all(|b| b.is_ascii_digit()))
                    .count(),
                1
            );
            seen.insert(p.to_string());
        }
        assert!(seen.len() > 495, "random enough: {}", seen.len());
    }

    #[test]
    fn a_longer_minimum_adds_words() {
        for _ in 0..50 {
            let p = temporary_password(60, &[]);
            assert!(p.len() >= 60, "{}", *p);
        }
    }

    #[test]
    fn the_users_names_never_appear() {
        // Half the list is banned: the generator must still find passwords without them.
        let half: Vec<&str> = words().into_iter().take(128).collect();
        for _ in 0..200 {
            let p = temporary_password(16, &half).to_lowercase();
            assert!(!half.iter().any(|w| p.contains(w)), "{p}");
        }
        let p = temporary_password(16, &["Tiger Piano", "mango"]).to_lowercase();
        assert!(!p.contains("tiger") && !p.contains("piano") && !p.contains("mango"));
    }
}
