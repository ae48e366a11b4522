//! Whether a command line is complete, or the shell will ask for more (a loop without its
//! end, an open quote, a here-document, a trailing `|` or `\`).
//!
//! Continuation prompts differ (bash, dash, ash and mksh print `> `, zsh `for> `, `dquote> `,
//! fish prints none and indents), and a program's own prompt may look the same (`> `,
//! `db> `). What the shell will do next follows from the line itself: a line typed after an
//! incomplete command, at a prompt that is not the shell's main one, continues it; after a
//! complete one it is input to whatever runs. This is a lexer, not a parser: it counts
//! quotes, here-documents and block keywords (sh's and fish's), which is what decides it.

/// Whether the shell will ask for another line after `text` (lines joined with `\n`).
pub(crate) fn is_incomplete(text: &str, fish: bool) -> bool {
    let mut lx = Lexer {
        fish,
        ..Lexer::default()
    };
    for line in text.split('\n') {
        if let Some(delimiter) = lx.heredocs.first() {
            // Inside a here-document: only its delimiter line ends it.
            let (strip_tabs, word) = delimiter;
            let candidate = if *strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if candidate == word {
                lx.heredocs.remove(0);
            }
            continue;
        }
        lx.line(line);
    }
    lx.open_quote.is_some()
        || lx.continued
        || !lx.heredocs.is_empty()
        || !lx.blocks.is_empty()
        || lx.dangling
}

#[derive(Debug, Default)]
struct Lexer {
    fish: bool,
    /// An unclosed `'`, `"` or `` ` `` (spans lines).
    open_quote: Option<char>,
    /// The line ended in a backslash.
    continued: bool,
    /// Here-documents opened and not yet ended: (strip tabs, delimiter).
    heredocs: Vec<(bool, String)>,
    /// Open blocks, by what closes them.
    blocks: Vec<Close>,
    /// The last token was `|`, `&&` or `||`: a command must follow (on the next line too).
    dangling: bool,
    /// Parsing the word after `<<`.
    want_delimiter: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// `done` (sh) or `end` (fish).
    Loop,
    /// `fi` or `end`.
    If,
    Esac,
    /// `end` (fish's begin, function, switch).
    End,
    Brace,
    Paren,
}

impl Lexer {
    fn line(&mut self, line: &str) {
        self.continued = false;
        let mut word = String::new();
        // Whether the word being read starts at a command position (keywords count only there).
        let mut at_command = true;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(q) = self.open_quote {
                if c == '\\' && q != '\'' {
                    chars.next();
                } else if c == q {
                    self.open_quote = None;
                }
                word.push('x');
                continue;
            }
            match c {
                '\\' => {
                    if chars.next().is_none() {
                        self.continued = true;
                    }
                    word.push('x');
                }
                '\'' | '"' | '`' if self.want_delimiter.is_none() => {
                    self.open_quote = Some(c);
                    word.push('x');
                }
                '#' if word.is_empty() => break,
                ' ' | '\t' => self.end_word(&mut word, &mut at_command),
                ';' | '&' | '|' => {
                    self.end_word(&mut word, &mut at_command);
                    let doubled = chars.peek() == Some(&c);
                    if doubled {
                        chars.next();
                    }
                    // `|`, `&&` and `||` need a command after them (`;;` ends a case branch).
                    self.dangling = c == '|' || (c == '&' && doubled);
                    at_command = true;
                }
                '(' => {
                    // A subshell, or a `$( )`, `<( )`, `>( )` substitution.
                    if (word.is_empty() && at_command)
                        || word.ends_with('$')
                        || word.ends_with('<')
                        || word.ends_with('>')
                    {
                        self.blocks.push(Close::Paren);
                    }
                    self.end_word(&mut word, &mut at_command);
                    at_command = true;
                }
                ')' => {
                    self.end_word(&mut word, &mut at_command);
                    if self.blocks.last() == Some(&Close::Paren) {
                        self.blocks.pop();
                    }
                    // After a case pattern's `)` a command follows.
                    at_command = true;
                }
                '<' if chars.peek() == Some(&'<') && word.is_empty() => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        // `<<<`: a here-string, not a document.
                        chars.next();
                    } else {
                        let strip = chars.peek() == Some(&'-');
                        if strip {
                            chars.next();
                        }
                        self.want_delimiter = Some(strip);
                    }
                }
                _ => {
                    self.dangling = false;
                    word.push(c);
                }
            }
        }
        if self.open_quote.is_none() {
            self.end_word(&mut word, &mut at_command);
        }
    }

    fn end_word(&mut self, word: &mut String, at_command: &mut bool) {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        if let Some(strip) = self.want_delimiter.take() {
            let delimiter: String = w.chars().filter(|c| *c != '"' && *c != '\'').collect();
            self.heredocs.push((strip, delimiter));
            return;
        }
        self.dangling = false;
        if !*at_command {
            return;
        }
        let fish = self.fish;
        match w.as_str() {
            "if" => self.blocks.push(Close::If),
            "for" | "while" | "until" | "select" | "foreach" => self.blocks.push(Close::Loop),
            "case" if !fish => self.blocks.push(Close::Esac),
            "begin" | "function" | "switch" if fish => self.blocks.push(Close::End),
            "{" => self.blocks.push(Close::Brace),
            "}" => self.close(Close::Brace),
            "done" => self.close(Close::Loop),
            "fi" => self.close(Close::If),
            "esac" => self.close(Close::Esac),
            "end" if fish => {
                self.blocks.pop();
            }
            _ => {}
        }
        // Keywords after which a command follows; after any other word come its arguments.
        *at_command = matches!(
            w.as_str(),
            "then" | "do" | "else" | "elif" | "if" | "while" | "until" | "!" | "time" | "{"
        ) || (fish && matches!(w.as_str(), "and" | "or" | "not" | "begin" | "else"));
    }

    fn close(&mut self, what: Close) {
        if let Some(at) = self.blocks.iter().rposition(|b| *b == what) {
            self.blocks.truncate(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_incomplete;

    #[test]
    fn complete_lines() {
        for line in [
            "ls -la",
            "echo 'a b' \"c d\" `date`",
            "for i in 1 2; do echo $i; done",
            "if true; then echo y; else echo n; fi",
            "case $x in a) echo a;; *) echo b;; esac",
            "cat <<EOF\nhello\nEOF",
            "cat <<-'END'\n\thello\n\tEND",
            "echo done; echo for",
            "f() { echo hi; }",
            "(cd /tmp && ls)",
            "echo $(date) <(ls) # for if {",
            "cat <<< 'here string'",
            "a && b || c | d",
            "echo a\\ b",
            "while true; do sleep 1; done &",
        ] {
            assert!(!is_incomplete(line, false), "{line:?}");
        }
    }

    #[test]
    fn incomplete_lines() {
        for line in [
            "for i in 1 2",
            "for i in 1 2; do",
            "for i in 1 2; do\necho $i",
            "if true; then",
            "echo 'open",
            "echo \"open\nstill",
            "ls \\",
            "cat <<EOF\nhello",
            "ls |",
            "true &&",
            "f() {",
            "case $x in",
            "(cd /tmp",
            "echo $(date",
            "while read l; do echo $l; done <<EOF",
        ] {
            assert!(is_incomplete(line, false), "{line:?}");
        }
    }

    #[test]
    fn fish_blocks() {
        assert!(is_incomplete("for i in 1 2", true));
        assert!(is_incomplete("for i in 1 2\necho $i", true));
        assert!(!is_incomplete("for i in 1 2\necho $i\nend", true));
        assert!(is_incomplete("function f\necho hi", true));
        assert!(!is_incomplete("begin; echo a; end", true));
        assert!(!is_incomplete("echo a; and echo b", true));
    }
}
