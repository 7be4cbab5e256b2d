//! The Rust client library in a process of its own, so integration tests can
//! run it as another OS user.
//!
//! `it-client [--db D] [--user U] [--write] [--with] STEP...` where a STEP is
//! `p:VALUE` (a parameter for the next statement; `p:` + JSON with `j:`),
//! `q:SQL` (query: prints the rows as a JSON array), `x:SQL` (execute:
//! prints the count), `commit`, `rollback`, `hang` (prints `HANG` and
//! sleeps until killed), `fail` (with `--with`: the closure returns an
//! error), `panic` (with `--with`: the closure panics). Errors print
//! `{"error":{...}}` and exit 1.

use iam_pgconnect::{Config, Connection, Error, ToParam};
use serde_json::{json, Value};
use std::io::Write;

enum Step {
    Param(Value),
    Query(String),
    Execute(String),
    Commit,
    Rollback,
    Hang,
    Fail,
    Panic,
    CancelAfter(u64),
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut config = Config::new().client_name("it-client");
    let mut with = false;
    let mut steps = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => config = config.db(args.next().unwrap_or_default()),
            "--user" => config = config.user(args.next().unwrap_or_default()),
            "--write" => config = config.readonly(false),
            "--reason" => config = config.reason(args.next().unwrap_or_default()),
            "--with" => with = true,
            "commit" => steps.push(Step::Commit),
            "rollback" => steps.push(Step::Rollback),
            "hang" => steps.push(Step::Hang),
            "fail" => steps.push(Step::Fail),
            "panic" => steps.push(Step::Panic),
            s if s.starts_with("cancel:") => {
                steps.push(Step::CancelAfter(s[7..].parse().unwrap_or(1000)))
            }
            s if s.starts_with("p:") => steps.push(Step::Param(Value::String(s[2..].into()))),
            s if s.starts_with("j:") => steps.push(Step::Param(
                serde_json::from_str(&s[2..]).unwrap_or(Value::Null),
            )),
            s if s.starts_with("q:") => steps.push(Step::Query(s[2..].into())),
            s if s.starts_with("x:") => steps.push(Step::Execute(s[2..].into())),
            other => {
                eprintln!("it-client: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let result = if with {
        config.with_connection(|db| run(db, &steps))
    } else {
        config.connect().map_err(ItError::from).and_then(|mut db| {
            run(&mut db, &steps)?;
            Ok(db.close()?)
        })
    };
    if let Err(ItError::Fail) = result {
        println!("{}", json!({"error": {"code": "test_failure"}}));
        std::process::exit(1);
    }
    if let Err(ItError::Client(e)) = result {
        println!(
            "{}",
            json!({"error": {"code": e.code().as_str(), "sqlstate": e.sqlstate(), "message": e.message(),
                "denied": e.is_denied(), "read_only": e.is_read_only()}})
        );
        std::process::exit(1);
    }
    println!("{}", json!({"done": true}));
}

/// The closure's error: the client's, or the test's deliberate failure.
enum ItError {
    Client(Error),
    Fail,
}

impl From<Error> for ItError {
    fn from(e: Error) -> Self {
        ItError::Client(e)
    }
}

fn run(db: &mut Connection, steps: &[Step]) -> Result<(), ItError> {
    let mut params: Vec<Value> = Vec::new();
    let out = |v: Value| {
        println!("{v}");
        let _ = std::io::stdout().flush();
    };
    for step in steps {
        match step {
            Step::Param(v) => params.push(v.clone()),
            Step::Query(sql) => {
                let refs: Vec<&dyn ToParam> = params.iter().map(|p| p as &dyn ToParam).collect();
                let rows = db.query(sql, &refs)?;
                params.clear();
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        let mut obj = serde_json::Map::new();
                        for (c, v) in r.columns().iter().zip(r.values()) {
                            obj.insert(c.name.clone(), v.clone());
                        }
                        Value::Object(obj)
                    })
                    .collect();
                out(json!({ "rows": rows }));
            }
            Step::Execute(sql) => {
                let refs: Vec<&dyn ToParam> = params.iter().map(|p| p as &dyn ToParam).collect();
                let n = db.execute(sql, &refs)?;
                params.clear();
                out(json!({ "affected": n }));
            }
            Step::Commit => {
                db.commit()?;
                out(json!({"committed": true}));
            }
            Step::Rollback => {
                db.rollback()?;
                out(json!({"rolled_back": true}));
            }
            Step::Hang => {
                out(json!("HANG"));
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            Step::Fail => {
                return Err(ItError::Fail);
            }
            Step::Panic => panic!("it-client: panic step"),
            Step::CancelAfter(ms) => {
                let handle = db.cancel_handle();
                let ms = *ms;
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    let outcome = match handle.cancel() {
                        Ok(()) => json!({"cancelled": true}),
                        Err(e) => json!({"cancel_error": e.message()}),
                    };
                    println!("{outcome}");
                    let _ = std::io::stdout().flush();
                });
            }
        }
    }
    Ok(())
}
