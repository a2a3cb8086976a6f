//! Tokens into statements: commands, `if`/`elif`/`else`/`fi`, `menuentry` and `submenu`
//! blocks, `function` definitions, and loops (`for`/`while`/`until`, parsed so their bodies
//! are skipped, never run). Nesting is limited to [`MAX_DEPTH`].

use super::lexer::{Token, Word};

/// Deepest nesting of blocks accepted.
pub const MAX_DEPTH: usize = 64;

/// Words that only close or continue a compound statement.
const RESERVED: [&str; 6] = ["then", "elif", "else", "fi", "do", "done"];

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// A command and its arguments (unexpanded).
    Command {
        /// Command name and arguments.
        words: Vec<Word>,
        /// 1-based line.
        line: usize,
    },
    /// `if` with its `elif` branches and `else`.
    If {
        /// (condition, body) pairs, in order.
        branches: Vec<(Vec<Stmt>, Vec<Stmt>)>,
        /// The `else` body.
        otherwise: Vec<Stmt>,
    },
    /// `menuentry` (or `submenu` when `submenu` is set).
    Menu {
        /// Whether it is a submenu.
        submenu: bool,
        /// The arguments before `{` (title and options).
        args: Vec<Word>,
        /// The block.
        body: Vec<Stmt>,
        /// 1-based line.
        line: usize,
    },
    /// A function definition (never called by vmux).
    Function,
    /// A loop (never run by vmux).
    Loop,
}

/// Parses a token list, or says where and why it cannot.
pub fn parse(tokens: &[Token]) -> Result<Vec<Stmt>, (usize, String)> {
    let mut p = Parser { tokens, pos: 0 };
    let (body, end) = p.list(&[], 0)?;
    match end {
        Stop::Eof => Ok(body),
        Stop::Word(w, line) => Err((line, format!("unexpected '{w}'"))),
        Stop::Close(line) => Err((line, "unexpected '}'".into())),
    }
}

enum Stop {
    Eof,
    Word(String, usize),
    Close(usize),
}

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
}

impl Parser<'_> {
    fn line(&self) -> usize {
        match self.tokens.get(self.pos).or(self.tokens.last()) {
            Some(Token::Word(_, l) | Token::End(l) | Token::Open(l) | Token::Close(l)) => *l,
            None => 1,
        }
    }

    /// Statements until end of input, `}`, or a command word in `stops` (consumed).
    fn list(&mut self, stops: &[&str], depth: usize) -> Result<(Vec<Stmt>, Stop), (usize, String)> {
        if depth > MAX_DEPTH {
            return Err((self.line(), format!("blocks nest deeper than {MAX_DEPTH}")));
        }
        let mut out = Vec::new();
        loop {
            match self.tokens.get(self.pos) {
                None => return Ok((out, Stop::Eof)),
                Some(Token::End(_)) => self.pos += 1,
                Some(Token::Close(line)) => {
                    let line = *line;
                    self.pos += 1;
                    return Ok((out, Stop::Close(line)));
                }
                Some(Token::Open(line)) => return Err((*line, "unexpected '{'".into())),
                Some(Token::Word(word, line)) => {
                    let line = *line;
                    if let Some(bare) = word.bare() {
                        if stops.contains(&bare) {
                            self.pos += 1;
                            return Ok((out, Stop::Word(bare.to_string(), line)));
                        }
                        if RESERVED.contains(&bare) {
                            return Err((line, format!("unexpected '{bare}'")));
                        }
                        if let Some(stmt) = self.compound(bare, line, depth)? {
                            out.push(stmt);
                            continue;
                        }
                    }
                    out.push(self.command());
                }
            }
        }
    }

    /// A compound statement starting with reserved word `word`, or `None` for a command.
    fn compound(
        &mut self,
        word: &str,
        line: usize,
        depth: usize,
    ) -> Result<Option<Stmt>, (usize, String)> {
        match word {
            "if" => {
                self.pos += 1;
                self.if_rest(line, depth).map(Some)
            }
            "menuentry" | "submenu" => {
                self.pos += 1;
                let mut args = Vec::new();
                loop {
                    match self.tokens.get(self.pos) {
                        Some(Token::Word(w, _)) => {
                            args.push(w.clone());
                            self.pos += 1;
                        }
                        Some(Token::Open(_)) => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err((line, format!("{word} without a '{{' block"))),
                    }
                }
                let (body, stop) = self.list(&[], depth + 1)?;
                self.expect_close(stop, line, word)?;
                Ok(Some(Stmt::Menu {
                    submenu: word == "submenu",
                    args,
                    body,
                    line,
                }))
            }
            "function" => {
                self.pos += 1;
                if !matches!(self.tokens.get(self.pos), Some(Token::Word(..))) {
                    return Err((line, "function without a name".into()));
                }
                self.pos += 1;
                if !matches!(self.tokens.get(self.pos), Some(Token::Open(_))) {
                    return Err((line, "function without a '{' block".into()));
                }
                self.pos += 1;
                let (_, stop) = self.list(&[], depth + 1)?;
                self.expect_close(stop, line, word)?;
                Ok(Some(Stmt::Function))
            }
            "for" | "while" | "until" => {
                self.pos += 1;
                let (_, stop) = self.list(&["do"], depth + 1)?;
                if !matches!(stop, Stop::Word(..)) {
                    return Err((line, format!("{word} without 'do'")));
                }
                let (_, stop) = self.list(&["done"], depth + 1)?;
                if !matches!(stop, Stop::Word(..)) {
                    return Err((line, format!("{word} without 'done'")));
                }
                Ok(Some(Stmt::Loop))
            }
            _ => Ok(None),
        }
    }

    fn expect_close(&self, stop: Stop, line: usize, what: &str) -> Result<(), (usize, String)> {
        match stop {
            Stop::Close(_) => Ok(()),
            _ => Err((
                line,
                format!("the {what} block opened here is never closed with '}}'"),
            )),
        }
    }

    /// After `if`: conditions, bodies, up to `fi`.
    fn if_rest(&mut self, line: usize, depth: usize) -> Result<Stmt, (usize, String)> {
        let mut branches = Vec::new();
        loop {
            let (cond, stop) = self.list(&["then"], depth + 1)?;
            if !matches!(stop, Stop::Word(..)) {
                return Err((line, "if without 'then'".into()));
            }
            let (body, stop) = self.list(&["elif", "else", "fi"], depth + 1)?;
            branches.push((cond, body));
            match stop {
                Stop::Word(w, _) if w == "elif" => continue,
                Stop::Word(w, _) if w == "fi" => {
                    return Ok(Stmt::If {
                        branches,
                        otherwise: Vec::new(),
                    });
                }
                Stop::Word(_, _) => {
                    let (otherwise, stop) = self.list(&["fi"], depth + 1)?;
                    if !matches!(stop, Stop::Word(..)) {
                        return Err((line, "if without 'fi'".into()));
                    }
                    return Ok(Stmt::If {
                        branches,
                        otherwise,
                    });
                }
                _ => return Err((line, "if without 'fi'".into())),
            }
        }
    }

    /// Words up to the end of the command (a `}` ends it too, without being consumed).
    fn command(&mut self) -> Stmt {
        let line = self.line();
        let mut words = Vec::new();
        while let Some(Token::Word(w, _)) = self.tokens.get(self.pos) {
            words.push(w.clone());
            self.pos += 1;
        }
        Stmt::Command { words, line }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn parse_src(src: &str) -> Result<Vec<Stmt>, (usize, String)> {
        parse(&lex(src).expect("lexes"))
    }

    #[test]
    fn menuentries_nest_in_submenus_and_ifs() {
        let stmts = parse_src(
            "if [ x ]; then\n set a=1\nelif [ y ]; then\n set a=2\nelse\n set a=3\nfi\nsubmenu 'S' {\n menuentry 'E' {\n  linux /k\n }\n}\n",
        )
        .expect("parses");
        assert!(
            matches!(&stmts[0], Stmt::If { branches, otherwise } if branches.len() == 2 && otherwise.len() == 1)
        );
        let Stmt::Menu {
            submenu: true,
            body,
            ..
        } = &stmts[1]
        else {
            panic!("submenu expected: {stmts:?}");
        };
        assert!(matches!(&body[0], Stmt::Menu { submenu: false, .. }));
    }

    #[test]
    fn functions_and_loops_are_parsed_but_kept_empty() {
        let stmts = parse_src("function f {\n insmod x\n}\nfor i in 1 2; do echo $i; done\n")
            .expect("parses");
        assert_eq!(stmts, vec![Stmt::Function, Stmt::Loop]);
    }

    #[test]
    fn an_unclosed_menuentry_names_its_line() {
        let (line, reason) =
            parse_src("set a=1\nmenuentry 'x' {\n linux /k\n").expect_err("unclosed");
        assert_eq!(line, 2);
        assert!(reason.contains("never closed"), "{reason}");
    }

    #[test]
    fn a_stray_fi_or_brace_is_an_error() {
        assert!(parse_src("fi\n").is_err());
        assert!(parse_src("}\n").is_err());
        assert!(parse_src("if true; then\n").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let src = "if true; then\n".repeat(10_000);
        let (_, reason) = parse_src(&src).expect_err("too deep");
        assert!(reason.contains("deeper"), "{reason}");
    }
}
