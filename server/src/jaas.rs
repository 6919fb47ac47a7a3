//! The JAAS login configuration file (`-Djava.security.auth.login.config`),
//! read as the JDK's `ConfigFile` reads it, for the one thing the server
//! needs from it: the `Server` section (`zookeeper.sasl.serverconfig`) and
//! its `DigestLoginModule` users, `user_<name>="<password>"`.
//!
//! Syntax: `Name { module.Class flag key=value key="quoted value"; ... };`
//! with `//`, `/* */` and `#` comments. This is not the SASL mechanism
//! (`net::sasl`) and not zoo.cfg.
//!
//! Invariant: the file is untrusted input: it is bounded in size, parsing
//! never panics, and every error names the file and line. Passwords are
//! never logged.

use crate::config::ConfigError;
use net::sasl::{DigestUsers, Login};
use std::collections::BTreeMap;

/// Larger than any real JAAS file.
pub const MAX_JAAS_BYTES: usize = 1024 * 1024;
/// The option prefix naming a DIGEST-MD5 user in the `Server` section.
const USER_PREFIX: &str = "user_";

/// One login module line of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub class: String,
    pub flag: String,
    /// Options in file order; a repeated key keeps the last value, as the
    /// JDK's map does, when read through [`Module::option`].
    pub options: Vec<(String, String)>,
    pub line: usize,
}

/// One named section (`Server`, `Client`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub modules: Vec<Module>,
    pub line: usize,
}

/// What the `Server` section makes of the server's SASL, plus what to warn
/// about.
#[derive(Debug)]
pub struct ServerLogin {
    pub login: Login,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semicolon,
    Equals,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    origin: &'a str,
}

impl<'a> Lexer<'a> {
    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            origin: self.origin.to_string(),
            line: self.line,
            message: message.into(),
        }
    }

    /// The next token and the line it starts on; `None` at the end.
    fn next(&mut self) -> Result<Option<(Token, usize)>, ConfigError> {
        loop {
            let Some(&c) = self.chars.peek() else {
                return Ok(None);
            };
            match c {
                '\n' => {
                    self.line += 1;
                    self.chars.next();
                }
                c if c.is_whitespace() => {
                    self.chars.next();
                }
                '#' => self.skip_line(),
                '/' => {
                    self.chars.next();
                    match self.chars.peek() {
                        Some('/') => self.skip_line(),
                        Some('*') => {
                            self.chars.next();
                            self.skip_block()?;
                        }
                        _ => return Err(self.error("a lone '/' (comments are // or /* */)")),
                    }
                }
                _ => break,
            }
        }
        let line = self.line;
        let Some(c) = self.chars.next() else {
            return Ok(None);
        };
        let token = match c {
            '{' => Token::Open,
            '}' => Token::Close,
            ';' => Token::Semicolon,
            '=' => Token::Equals,
            '"' | '\'' => Token::Quoted(self.quoted(c)?),
            c => {
                let mut word = String::from(c);
                while let Some(&next) = self.chars.peek() {
                    if next.is_whitespace() || "{};=\"'".contains(next) {
                        break;
                    }
                    word.push(next);
                    self.chars.next();
                }
                Token::Word(word)
            }
        };
        Ok(Some((token, line)))
    }

    fn skip_line(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                break;
            }
            self.chars.next();
        }
    }

    fn skip_block(&mut self) -> Result<(), ConfigError> {
        let start = self.line;
        let mut star = false;
        for c in self.chars.by_ref() {
            match c {
                '\n' => self.line += 1,
                '/' if star => return Ok(()),
                _ => {}
            }
            star = c == '*';
        }
        Err(ConfigError::Syntax {
            origin: self.origin.to_string(),
            line: start,
            message: "unterminated /* comment".to_string(),
        })
    }

    fn quoted(&mut self, quote: char) -> Result<String, ConfigError> {
        let start = self.line;
        let mut out = String::new();
        while let Some(c) = self.chars.next() {
            match c {
                c if c == quote => return Ok(out),
                '\\' => match self.chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(other) => out.push(other),
                    None => break,
                },
                '\n' => {
                    return Err(self.error("a quoted value runs past the end of its line"));
                }
                c => out.push(c),
            }
        }
        Err(ConfigError::Syntax {
            origin: self.origin.to_string(),
            line: start,
            message: "unterminated quoted value".to_string(),
        })
    }
}

/// Parses the whole file. `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Section>, ConfigError> {
    if text.len() > MAX_JAAS_BYTES {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            message: format!(
                "JAAS file of {} bytes is larger than {MAX_JAAS_BYTES}",
                text.len()
            ),
        });
    }
    let mut lexer = Lexer {
        chars: text.chars().peekable(),
        line: 1,
        origin,
    };
    let mut sections: Vec<Section> = Vec::new();
    let expected = |lexer: &Lexer<'_>, what: &str, got: Option<(Token, usize)>| match got {
        None => lexer.error(format!("expected {what}, found the end of the file")),
        Some((token, line)) => ConfigError::Syntax {
            origin: origin.to_string(),
            line,
            message: format!("expected {what}, found {}", describe(&token)),
        },
    };
    while let Some((token, line)) = lexer.next()? {
        let name = match token {
            Token::Word(name) | Token::Quoted(name) => name,
            other => return Err(expected(&lexer, "a section name", Some((other, line)))),
        };
        match lexer.next()? {
            Some((Token::Open, _)) => {}
            other => return Err(expected(&lexer, &format!("'{{' after {name}"), other)),
        }
        let mut modules = Vec::new();
        loop {
            let (class, module_line) = match lexer.next()? {
                Some((Token::Close, _)) => break,
                Some((Token::Word(class), line)) => (class, line),
                other => return Err(expected(&lexer, "a login module class or '}'", other)),
            };
            let flag = match lexer.next()? {
                Some((Token::Word(flag), line)) => {
                    let known = ["required", "requisite", "sufficient", "optional"];
                    if !known.iter().any(|k| k.eq_ignore_ascii_case(&flag)) {
                        return Err(ConfigError::Syntax {
                            origin: origin.to_string(),
                            line,
                            message: format!(
                                "login module {class} has control flag {flag:?}; expected required, requisite, sufficient or optional"
                            ),
                        });
                    }
                    flag
                }
                other => {
                    return Err(expected(
                        &lexer,
                        &format!("a control flag after {class}"),
                        other,
                    ))
                }
            };
            let mut options = Vec::new();
            loop {
                let key = match lexer.next()? {
                    Some((Token::Semicolon, _)) => break,
                    Some((Token::Word(key), _)) => key,
                    other => return Err(expected(&lexer, "an option key or ';'", other)),
                };
                match lexer.next()? {
                    Some((Token::Equals, _)) => {}
                    other => return Err(expected(&lexer, &format!("'=' after {key}"), other)),
                }
                let value = match lexer.next()? {
                    Some((Token::Word(value) | Token::Quoted(value), _)) => value,
                    other => return Err(expected(&lexer, &format!("a value for {key}"), other)),
                };
                options.push((key, value));
            }
            modules.push(Module {
                class,
                flag,
                options,
                line: module_line,
            });
        }
        match lexer.next()? {
            Some((Token::Semicolon, _)) => {}
            other => {
                return Err(expected(
                    &lexer,
                    &format!("';' after the {name} section"),
                    other,
                ))
            }
        }
        if sections.iter().any(|s| s.name == name) {
            return Err(ConfigError::Syntax {
                origin: origin.to_string(),
                line,
                message: format!("section {name} appears more than once"),
            });
        }
        sections.push(Section {
            name,
            modules,
            line,
        });
    }
    Ok(sections)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(word) => format!("{word:?}"),
        // A quoted value may be a password: not echoed.
        Token::Quoted(_) => "a quoted value".to_string(),
        Token::Open => "'{'".to_string(),
        Token::Close => "'}'".to_string(),
        Token::Semicolon => "';'".to_string(),
        Token::Equals => "'='".to_string(),
    }
}

impl Module {
    fn is_kerberos(&self) -> bool {
        self.class.ends_with("Krb5LoginModule")
    }

    fn is_digest(&self) -> bool {
        self.class == "org.apache.zookeeper.server.auth.DigestLoginModule"
    }
}

/// What the server can serve from `section` (the reference: a Kerberos
/// module makes the server speak GSSAPI, anything else DIGEST-MD5 with the
/// `user_` options of every module of the section).
pub fn server_login(section: &Section, origin: &str) -> ServerLogin {
    let mut warnings = Vec::new();
    if let Some(module) = section.modules.iter().find(|m| m.is_kerberos()) {
        warnings.push(format!(
            "{origin}:{}: the {} section uses {}: GSSAPI/Kerberos is not supported by this server; \
             every SASL request will be refused with AuthFailed",
            module.line, section.name, module.class
        ));
        return ServerLogin {
            login: Login::Unsupported {
                module: module.class.clone(),
            },
            warnings,
        };
    }
    let mut users = BTreeMap::new();
    for module in &section.modules {
        if !module.is_digest() {
            warnings.push(format!(
                "{origin}:{}: login module {} is not known to this server; its user_ options are \
                 read as DigestLoginModule's",
                module.line, module.class
            ));
        }
        for (key, value) in &module.options {
            if let Some(name) = key.strip_prefix(USER_PREFIX) {
                users.insert(name.to_string(), value.clone());
            }
        }
    }
    if users.is_empty() {
        warnings.push(format!(
            "{origin}:{}: the {} section names no user_<name>=\"<password>\"; every DIGEST-MD5 login will fail",
            section.line, section.name
        ));
    }
    ServerLogin {
        login: Login::Digest(DigestUsers::new(users)),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn err(text: &str) -> String {
        match parse(text, "jaas.conf") {
            Ok(sections) => panic!("expected an error, got {sections:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn kazoo_and_apache_examples() {
        let text = r#"
// ZooKeeper's server section
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
/* the client
   side */
Client {
  org.apache.zookeeper.server.auth.DigestLoginModule required
  username="jaasuser" password='jaas_password';
};
"#;
        let sections = parse(text, "jaas.conf").unwrap();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].name, "Server");
        assert_eq!(sections[0].modules[0].line, 4);
        let login = server_login(&sections[0], "jaas.conf");
        assert!(login.warnings.is_empty(), "{:?}", login.warnings);
        let Login::Digest(users) = login.login else {
            panic!("{:?}", login.login)
        };
        assert_eq!(users.password("jaasuser"), Some("jaas_password"));
        assert_eq!(users.password("super"), Some("super_secret"));
        assert_eq!(users.len(), 2);
        assert_eq!(sections[1].modules[0].options[1].1, "jaas_password");
    }

    #[test]
    fn empty_file_and_empty_section() {
        assert_eq!(parse("", "j").unwrap(), vec![]);
        assert_eq!(parse("  # nothing\n", "j").unwrap(), vec![]);
        let sections = parse("Server { };", "j").unwrap();
        assert!(sections[0].modules.is_empty());
    }

    #[test]
    fn kerberos_is_reported_unsupported() {
        let sections = parse(
            "Server {\n com.sun.security.auth.module.Krb5LoginModule required\n useKeyTab=true keyTab=\"/k\" principal=\"zookeeper/h@R\";\n};",
            "j",
        )
        .unwrap();
        let login = server_login(&sections[0], "j");
        assert_eq!(
            login.login,
            Login::Unsupported {
                module: "com.sun.security.auth.module.Krb5LoginModule".to_string()
            }
        );
        assert!(login.warnings[0].contains("j:2:"), "{:?}", login.warnings);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases = [
            (
                "Server {\n m required user_a=\"x\"\n};",
                "jaas.conf:3: expected an option key or ';', found '}'",
            ),
            (
                "Server {\n m mandatory;\n};",
                "jaas.conf:2: login module m has control flag \"mandatory\"",
            ),
            (
                "Server\n m required;",
                "jaas.conf:2: expected '{' after Server, found \"m\"",
            ),
            (
                "Server {\n m required a=\"open\n};",
                "jaas.conf:2: a quoted value runs past",
            ),
            (
                "Server {\n m required a=;\n};",
                "jaas.conf:2: expected a value for a, found ';'",
            ),
            (
                "Server {\n m required;\n}",
                "jaas.conf:3: expected ';' after the Server section, found the end",
            ),
            (
                "Server { m required; };\nServer { m required; };",
                "jaas.conf:2: section Server appears more than once",
            ),
            (
                "/* never closed\nServer {};",
                "jaas.conf:1: unterminated /* comment",
            ),
            (
                "Server { m required a=\"x\\",
                "jaas.conf:1: unterminated quoted value",
            ),
            ("= {};", "jaas.conf:1: expected a section name, found '='"),
            ("Server { / };", "jaas.conf:1: a lone '/'"),
        ];
        for (text, expected) in cases {
            let error = err(text);
            assert!(error.starts_with(expected), "{text:?}: {error}");
            assert!(
                !error.contains("\"x\""),
                "a quoted value is never echoed: {error}"
            );
        }
        let huge = "#".repeat(MAX_JAAS_BYTES + 1);
        assert!(err(&huge).contains("larger than"));
    }

    #[test]
    fn unknown_module_and_no_users_warn() {
        let sections = parse(
            "Server { my.Module optional user_a=b; };\nOther { x required; };",
            "j",
        )
        .unwrap();
        let login = server_login(&sections[0], "j");
        assert!(login.warnings[0].contains("my.Module"));
        assert!(matches!(login.login, Login::Digest(ref u) if u.password("a") == Some("b")));
        let login = server_login(&sections[1], "j");
        assert!(
            login.warnings[1].contains("names no user_"),
            "{:?}",
            login.warnings
        );
    }
}
