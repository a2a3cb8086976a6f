//! grub.cfg into tokens: words (with their quoting and `$variable` references kept apart,
//! since variables are expanded when a command runs), newlines, `;`, and the braces of
//! `menuentry`/`submenu`/`function` blocks. GRUB's script syntax is a small shell: single
//! quotes are literal, double quotes expand variables and take `\$ \" \\` escapes, a backslash
//! outside quotes escapes the next character (and joins lines), `#` at a word's start
//! comments out the rest of the line.

/// One piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text; `quoted` when it came from quotes or an escape.
    Lit {
        /// The text.
        text: String,
        /// Whether it was quoted.
        quoted: bool,
    },
    /// `$name` / `${name}`; `quoted` inside double quotes (then it is not split on spaces).
    Var {
        /// The variable name.
        name: String,
        /// Whether it was inside double quotes.
        quoted: bool,
    },
}

/// A word: its parts, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    /// The parts.
    pub parts: Vec<Part>,
}

impl Word {
    /// The word as plain text when it is a single unquoted literal (reserved words, braces).
    pub fn bare(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [
                Part::Lit {
                    text,
                    quoted: false,
                },
            ] => Some(text),
            _ => None,
        }
    }
}

/// A token with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A word.
    Word(Word, usize),
    /// End of a command: newline or `;`.
    End(usize),
    /// `{` standing alone.
    Open(usize),
    /// `}` standing alone.
    Close(usize),
}

/// Most tokens accepted from one file.
pub const MAX_TOKENS: usize = 1 << 18;

/// Splits `src` into tokens, or says where and why it cannot.
pub fn lex(src: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut lexer = Lexer {
        chars: src.chars().collect(),
        pos: 0,
        line: 1,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn push(&mut self, token: Token) -> Result<(), (usize, String)> {
        if self.tokens.len() >= MAX_TOKENS {
            return Err((self.line, format!("more than {MAX_TOKENS} tokens")));
        }
        self.tokens.push(token);
        Ok(())
    }

    fn run(&mut self) -> Result<(), (usize, String)> {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' => self.pos += 1,
                '\n' => {
                    self.push(Token::End(self.line))?;
                    self.line += 1;
                    self.pos += 1;
                }
                ';' => {
                    self.push(Token::End(self.line))?;
                    self.pos += 1;
                }
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                '\\' if self.chars.get(self.pos + 1) == Some(&'\n') => {
                    self.pos += 2;
                    self.line += 1;
                }
                _ => {
                    let line = self.line;
                    let word = self.word()?;
                    let token = match word.bare() {
                        Some("{") => Token::Open(line),
                        Some("}") => Token::Close(line),
                        _ => Token::Word(word, line),
                    };
                    self.push(token)?;
                }
            }
        }
        Ok(())
    }

    fn word(&mut self) -> Result<Word, (usize, String)> {
        let mut word = Word::default();
        let mut lit = String::new();
        let mut lit_quoted = false;
        let flush = |word: &mut Word, lit: &mut String, quoted: &mut bool| {
            if !lit.is_empty() || *quoted {
                word.parts.push(Part::Lit {
                    text: std::mem::take(lit),
                    quoted: *quoted,
                });
            }
            *quoted = false;
        };
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' => break,
                '\'' => {
                    flush(&mut word, &mut lit, &mut lit_quoted);
                    self.pos += 1;
                    let start_line = self.line;
                    let mut text = String::new();
                    loop {
                        match self.peek() {
                            None => {
                                return Err((start_line, "a single quote is never closed".into()));
                            }
                            Some('\'') => break,
                            Some(c) => {
                                if c == '\n' {
                                    self.line += 1;
                                }
                                text.push(c);
                                self.pos += 1;
                            }
                        }
                    }
                    self.pos += 1;
                    word.parts.push(Part::Lit { text, quoted: true });
                }
                '"' => {
                    flush(&mut word, &mut lit, &mut lit_quoted);
                    self.pos += 1;
                    self.double_quoted(&mut word)?;
                }
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\n') => {
                            self.line += 1;
                            self.pos += 1;
                        }
                        Some(c) => {
                            flush(&mut word, &mut lit, &mut lit_quoted);
                            word.parts.push(Part::Lit {
                                text: c.to_string(),
                                quoted: true,
                            });
                            self.pos += 1;
                        }
                        None => {}
                    }
                }
                '$' => match self.variable() {
                    Some(name) => {
                        flush(&mut word, &mut lit, &mut lit_quoted);
                        word.parts.push(Part::Var {
                            name,
                            quoted: false,
                        });
                    }
                    None => {
                        lit.push('$');
                        self.pos += 1;
                    }
                },
                _ => {
                    lit.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut word, &mut lit, &mut lit_quoted);
        Ok(word)
    }

    /// After an opening `"`: up to and including the closing one.
    fn double_quoted(&mut self, word: &mut Word) -> Result<(), (usize, String)> {
        let start_line = self.line;
        let mut text = String::new();
        let mut any = false;
        loop {
            match self.peek() {
                None => return Err((start_line, "a double quote is never closed".into())),
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => {
                    let next = self.chars.get(self.pos + 1).copied();
                    match next {
                        Some('$' | '"' | '\\') => {
                            text.push(next.unwrap_or_default());
                            self.pos += 2;
                        }
                        Some('\n') => {
                            self.line += 1;
                            self.pos += 2;
                        }
                        _ => {
                            text.push('\\');
                            self.pos += 1;
                        }
                    }
                }
                Some('$') => match self.variable() {
                    Some(name) => {
                        if !text.is_empty() || !any {
                            word.parts.push(Part::Lit {
                                text: std::mem::take(&mut text),
                                quoted: true,
                            });
                        }
                        any = true;
                        word.parts.push(Part::Var { name, quoted: true });
                    }
                    None => {
                        text.push('$');
                        self.pos += 1;
                    }
                },
                Some(c) => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        if !text.is_empty() || !any {
            word.parts.push(Part::Lit { text, quoted: true });
        }
        Ok(())
    }

    /// At a `$`: consumes `$name`, `${name}`, `$1`, `$?`, `$#` and returns the name, or
    /// consumes nothing when no name follows.
    fn variable(&mut self) -> Option<String> {
        let next = self.chars.get(self.pos + 1).copied()?;
        if next == '{' {
            let start = self.pos + 2;
            let len = self.chars[start..].iter().position(|c| *c == '}')?;
            let name: String = self.chars[start..start + len].iter().collect();
            if name.is_empty() || name.contains('\n') {
                return None;
            }
            self.pos = start + len + 1;
            return Some(name);
        }
        if matches!(next, '?' | '#' | '@' | '*') || next.is_ascii_digit() {
            self.pos += 2;
            return Some(next.to_string());
        }
        if next.is_ascii_alphabetic() || next == '_' {
            let start = self.pos + 1;
            let len = self.chars[start..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            self.pos = start + len;
            return Some(self.chars[start..start + len].iter().collect());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(text: &str, quoted: bool) -> Part {
        Part::Lit {
            text: text.into(),
            quoted,
        }
    }

    fn words(src: &str) -> Vec<Vec<Part>> {
        lex(src)
            .expect("lexes")
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w, _) => Some(w.parts),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn quotes_variables_and_escapes_split_into_parts() {
        let w = words(r#"linux /boot/vmlinuz root=UUID=${uuid} 'a b' "x $y" \$z"#);
        assert_eq!(w[0], vec![lit("linux", false)]);
        assert_eq!(
            w[2],
            vec![
                lit("root=UUID=", false),
                Part::Var {
                    name: "uuid".into(),
                    quoted: false
                }
            ]
        );
        assert_eq!(w[3], vec![lit("a b", true)]);
        assert_eq!(
            w[4],
            vec![
                lit("x ", true),
                Part::Var {
                    name: "y".into(),
                    quoted: true
                }
            ]
        );
        assert_eq!(w[5], vec![lit("$", true), lit("z", false)]);
    }

    #[test]
    fn braces_newlines_and_semicolons_are_tokens_and_comments_vanish() {
        let tokens = lex("menuentry 'x' {\n  # note\n  linux /k; }\n").expect("lexes");
        let kinds: Vec<&str> = tokens
            .iter()
            .map(|t| match t {
                Token::Word(..) => "w",
                Token::End(_) => ";",
                Token::Open(_) => "{",
                Token::Close(_) => "}",
            })
            .collect();
        assert_eq!(kinds, ["w", "w", "{", ";", ";", "w", "w", ";", "}", ";"]);
    }

    #[test]
    fn an_unclosed_quote_names_its_line() {
        let (line, reason) = lex("set a=1\nset b='oops\n\n").expect_err("unclosed");
        assert_eq!(line, 2);
        assert!(reason.contains("single quote"));
    }

    #[test]
    fn a_dollar_without_a_name_is_literal() {
        assert_eq!(words("echo $ ${")[1], vec![lit("$", false)]);
    }
}
