//! Version comparison for sorting boot entries newest first, in the spirit of systemd's
//! `strverscmp_improved` (which the Boot Loader Specification names) and rpm's `rpmvercmp`:
//! digit runs compare as numbers, letter runs as text, a number beats letters, `~` sorts
//! before everything (even the end), and other punctuation only separates.

use std::cmp::Ordering;

/// Compares two version strings (or entry file names).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        a = skip_separators(a);
        b = skip_separators(b);
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let (x_digit, y_digit) = (x.is_ascii_digit(), y.is_ascii_digit());
                if x_digit != y_digit {
                    return if x_digit {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    };
                }
                let (run_a, rest_a) = split_run(a, x_digit);
                let (run_b, rest_b) = split_run(b, x_digit);
                let order = if x_digit {
                    compare_numbers(run_a, run_b)
                } else {
                    run_a.cmp(run_b)
                };
                if order != Ordering::Equal {
                    return order;
                }
                a = rest_a;
                b = rest_b;
            }
        }
    }
}

fn skip_separators(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|c| !c.is_ascii_alphanumeric() && **c != b'~')
        .count();
    &s[n..]
}

fn split_run(s: &[u8], digits: bool) -> (&[u8], &[u8]) {
    let n = s
        .iter()
        .take_while(|c| {
            if digits {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        })
        .count();
    s.split_at(n)
}

fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_numbers() {
        assert_eq!(compare("6.10.0", "6.9.0"), Ordering::Greater);
        assert_eq!(
            compare("6.1.0-28-amd64", "6.1.0-9-amd64"),
            Ordering::Greater
        );
        assert_eq!(compare("007", "7"), Ordering::Equal);
    }

    #[test]
    fn a_tilde_sorts_before_the_release() {
        assert_eq!(compare("6.8~rc1", "6.8"), Ordering::Less);
        assert_eq!(compare("6.8", "6.8~rc1"), Ordering::Greater);
    }

    #[test]
    fn fedora_entry_names_order_by_kernel_version() {
        let old = "0123abc-6.5.6-300.fc39.x86_64";
        let new = "0123abc-6.11.4-301.fc39.x86_64";
        assert_eq!(compare(new, old), Ordering::Greater);
    }

    #[test]
    fn numbers_beat_letters_and_longer_wins_a_tie() {
        assert_eq!(compare("1.0a", "1.0.1"), Ordering::Less);
        assert_eq!(compare("1.0.1", "1.0"), Ordering::Greater);
    }
}
