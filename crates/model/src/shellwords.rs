//! Splitting a command line into words the way Patroni does it (`shlex.split`, POSIX rules), so
//! `command: /usr/bin/pgbackrest --stanza='main db' restore` runs the same program with the same
//! arguments. No shell is involved: pipes, `$VAR` and globs are passed through literally.

/// Splits `line` into words. Single quotes keep everything literally; double quotes keep
/// everything except `\"`, `\\`, `\$`, `` \` `` and backslash-newline; outside quotes a backslash
/// escapes the next character. `''` is an empty word.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Distinguishes "no word yet" from an empty quoted word.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".to_string()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".to_string()),
                    }
                }
            }
            '\\' => match chars.next() {
                // Line continuation joins the lines, as in a shell.
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("a backslash at the end escapes nothing".to_string()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Patroni's `unquote` for option values: a value that is exactly one shell word loses its
/// quotes (`"'100M'"` becomes `100M`); anything else is used as written.
pub fn unquote(value: &str) -> String {
    match split(value) {
        Ok(words) if words.len() == 1 => words.into_iter().next().unwrap_or_default(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn plain_words() {
        assert_eq!(s("  /usr/bin/pgbackrest --stanza=main   --delta restore "), {
            ["/usr/bin/pgbackrest", "--stanza=main", "--delta", "restore"]
        });
        assert!(s("").is_empty());
        assert!(s(" \t\n").is_empty());
    }

    #[test]
    fn quotes() {
        assert_eq!(s(r#"cmd 'a b' "c d" e'f g'h"#), ["cmd", "a b", "c d", "ef gh"]);
        assert_eq!(s(r#"cmd '' """#), ["cmd", "", ""]);
        assert_eq!(s(r#"'it''s'"#), ["its"]);
        assert_eq!(s(r#""a \"q\" \\ \$x \n""#), [r#"a "q" \ $x \n"#]);
        assert_eq!(s(r#"'no \escapes "here"'"#), [r#"no \escapes "here""#]);
    }

    #[test]
    fn backslashes() {
        assert_eq!(s(r"a\ b c"), ["a b", "c"]);
        assert_eq!(s("a \\\nb"), ["a", "b"]);
        assert_eq!(s(r"\'x"), ["'x"]);
    }

    #[test]
    fn shell_syntax_is_literal() {
        assert_eq!(s("a | b $HOME #c"), ["a", "|", "b", "$HOME", "#c"]);
    }

    #[test]
    fn errors() {
        assert_eq!(split("a 'b").unwrap_err(), "unterminated single quote");
        assert_eq!(split("a \"b").unwrap_err(), "unterminated double quote");
        assert!(split("a \\").is_err());
    }

    #[test]
    fn unquote_single_words_only() {
        assert_eq!(unquote("'100M'"), "100M");
        assert_eq!(unquote("100M"), "100M");
        assert_eq!(unquote("a b"), "a b");
        assert_eq!(unquote("'a"), "'a");
    }

    proptest! {
        #[test]
        fn never_panics(line in ".*") {
            let _ = split(&line);
        }

        #[test]
        fn simple_words_round_trip(words in proptest::collection::vec("[a-zA-Z0-9_./=-]{1,12}", 0..6)) {
            prop_assert_eq!(split(&words.join(" ")).unwrap(), words);
        }

        #[test]
        fn single_quoting_round_trips(word in "[^']*") {
            prop_assert_eq!(split(&format!("'{word}'")).unwrap(), vec![word]);
        }
    }
}
