//! Transaction control typed as SQL (`BEGIN`, `COMMIT`, `SAVEPOINT`, …):
//! recognised by its leading keywords so that the engine maps it onto the
//! broker's own transaction control. The broker never receives these as
//! SQL (its guard would refuse them).

/// What a transaction-control statement asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxCommand {
    /// `BEGIN [WORK | TRANSACTION]`, `START TRANSACTION`.
    Begin,
    /// `COMMIT [WORK | TRANSACTION] [AND NO CHAIN]`, `END …`.
    Commit,
    /// `ROLLBACK [WORK | TRANSACTION] [AND NO CHAIN]`, `ABORT …`.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
    /// Transaction control the broker cannot honour (isolation levels,
    /// `AND CHAIN`, two-phase commit): the reason.
    Unsupported(String),
}

/// The words of a statement: identifiers (lower-cased unless quoted),
/// comments and whitespace skipped, up to the first other character.
fn words(sql: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'"' {
            let mut j = i + 1;
            let mut name = String::new();
            while j < b.len() {
                if b[j] == b'"' {
                    if b.get(j + 1) == Some(&b'"') {
                        name.push('"');
                        j += 2;
                        continue;
                    }
                    break;
                }
                let ch = sql[j..].chars().next().unwrap_or(' ');
                name.push(ch);
                j += ch.len_utf8();
            }
            out.push((name, true));
            i = j + 1;
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80)
            {
                j += 1;
            }
            out.push((sql[i..j].to_lowercase(), false));
            i = j;
        } else if c == b';' {
            i += 1;
        } else {
            out.push((sql[i..=i].to_owned(), true));
            break;
        }
    }
    out
}

/// The transaction command `sql` is, if it is one.
pub fn classify(sql: &str) -> Option<TxCommand> {
    let w = words(sql);
    let kw = |k: usize| {
        w.get(k)
            .filter(|(_, quoted)| !quoted)
            .map(|(s, _)| s.as_str())
    };
    let first = kw(0)?;
    // Skips an optional WORK / TRANSACTION.
    let after_noise = |k: usize| match kw(k) {
        Some("work" | "transaction") => k + 1,
        _ => k,
    };
    let unsupported = |what: &str| {
        Some(TxCommand::Unsupported(format!(
            "{what} is not supported: the broker controls the transaction (read-only unless --write)"
        )))
    };
    match first {
        "begin" | "start" => {
            if first == "start" && kw(1) != Some("transaction") {
                return None;
            }
            let k = if first == "start" { 2 } else { after_noise(1) };
            if w.len() > k {
                return unsupported(&format!(
                    "{} with options",
                    if first == "start" {
                        "START TRANSACTION"
                    } else {
                        "BEGIN"
                    }
                ));
            }
            Some(TxCommand::Begin)
        }
        "commit" | "end" | "rollback" | "abort" => {
            let commit = matches!(first, "commit" | "end");
            if first == "commit" && kw(1) == Some("prepared") {
                return unsupported("COMMIT PREPARED");
            }
            if first == "rollback" && kw(1) == Some("prepared") {
                return unsupported("ROLLBACK PREPARED");
            }
            let k = after_noise(1);
            if !commit && kw(k) == Some("to") {
                let k = if kw(k + 1) == Some("savepoint") {
                    k + 2
                } else {
                    k + 1
                };
                return match (w.get(k), w.len() == k + 1) {
                    (Some((name, _)), true) => Some(TxCommand::RollbackTo(name.clone())),
                    _ => None,
                };
            }
            match (kw(k), kw(k + 1), kw(k + 2), w.len()) {
                (None, ..) if w.len() == k => {}
                (Some("and"), Some("no"), Some("chain"), n) if n == k + 3 => {}
                (Some("and"), Some("chain"), None, n) if n == k + 2 => {
                    return unsupported("AND CHAIN");
                }
                _ => return None,
            }
            Some(if commit {
                TxCommand::Commit
            } else {
                TxCommand::Rollback
            })
        }
        "savepoint" => match (w.get(1), w.len()) {
            (Some((name, _)), 2) => Some(TxCommand::Savepoint(name.clone())),
            _ => None,
        },
        "release" => {
            let k = if kw(1) == Some("savepoint") { 2 } else { 1 };
            match (w.get(k), w.len() == k + 1) {
                (Some((name, _)), true) => Some(TxCommand::Release(name.clone())),
                _ => None,
            }
        }
        "prepare" if kw(1) == Some("transaction") => unsupported("PREPARE TRANSACTION"),
        "set"
            if matches!(kw(1), Some("transaction"))
                || (matches!(kw(1), Some("session")) && kw(2) == Some("characteristics")) =>
        {
            unsupported("SET TRANSACTION")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TxCommand::*;

    #[test]
    fn recognises_transaction_control() {
        for (sql, want) in [
            ("BEGIN;", Some(Begin)),
            ("begin work", Some(Begin)),
            ("-- fix\nBEGIN TRANSACTION;", Some(Begin)),
            ("START TRANSACTION;", Some(Begin)),
            ("COMMIT;", Some(Commit)),
            ("end", Some(Commit)),
            ("COMMIT AND NO CHAIN;", Some(Commit)),
            ("ROLLBACK;", Some(Rollback)),
            ("abort work;", Some(Rollback)),
            ("SAVEPOINT s1;", Some(Savepoint("s1".into()))),
            ("SAVEPOINT \"S 1\";", Some(Savepoint("S 1".into()))),
            ("RELEASE SAVEPOINT s1;", Some(Release("s1".into()))),
            ("release s1", Some(Release("s1".into()))),
            ("ROLLBACK TO SAVEPOINT S1;", Some(RollbackTo("s1".into()))),
            ("rollback work to s1", Some(RollbackTo("s1".into()))),
            ("SELECT 1;", None),
            ("BEGINx;", None),
            ("ENDING;", None),
            ("START foo", None),
            ("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END", None),
        ] {
            assert_eq!(classify(sql), want, "{sql}");
        }
        for sql in [
            "BEGIN ISOLATION LEVEL SERIALIZABLE;",
            "START TRANSACTION READ WRITE",
            "COMMIT AND CHAIN",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
            "SET TRANSACTION READ WRITE",
        ] {
            assert!(matches!(classify(sql), Some(Unsupported(_))), "{sql}");
        }
    }
}
