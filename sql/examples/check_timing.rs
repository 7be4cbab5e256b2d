//! How long one `SqlGuard::check` takes: `cargo run --release -p
//! iam-pgbroker-sql --example check_timing`. A measurement, not a test.

use std::time::{Duration, Instant};

use iam_pgbroker_sql::{convert_placeholders, fingerprint, normalize, Mode, SqlGuard};

fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn main() {
    let guard = SqlGuard::new();
    let statements = [
        ("small SELECT", "SELECT id, username FROM idm_identity WHERE username = $1"),
        (
            "join + subquery",
            "SELECT i.username, i.first_name || ' ' || i.last_name AS name, count(*) \
             FROM idm_identity i JOIN idm_identity c ON c.creator_id = i.id \
             WHERE i.state IN ('VALID', 'LEFT') AND i.id IN (SELECT creator_id FROM idm_identity WHERE disabled) \
             GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 3 DESC LIMIT 50",
        ),
        ("UPDATE", "UPDATE idm_identity SET disabled = true, modified = now() WHERE username = $1"),
        ("refused", "SELECT pg_read_file('/etc/passwd')"),
    ];
    for (name, sql) in statements {
        let check = per_call(20_000, || {
            let _ = std::hint::black_box(
                guard.check(std::hint::black_box(sql), Mode::Write { ddl: false }),
            );
        });
        let parse = per_call(20_000, || {
            let _ = std::hint::black_box(pg_query::parse(std::hint::black_box(sql), 0));
        });
        println!("{name:16} check {check:>9.1?}   (pg_query::parse alone {parse:>9.1?})");
    }
    let sql =
        "SELECT id FROM idm_identity WHERE username = %s AND email LIKE '%s%%' AND 7 %% 2 = %s";
    let convert = per_call(20_000, || {
        let _ = std::hint::black_box(convert_placeholders(std::hint::black_box(sql), 2));
    });
    println!("convert_placeholders   {convert:>9.1?}");
    let sql = statements[1].1;
    println!(
        "normalize              {:>9.1?}",
        per_call(5_000, || {
            let _ = std::hint::black_box(normalize(sql));
        })
    );
    println!(
        "fingerprint            {:>9.1?}",
        per_call(5_000, || {
            let _ = std::hint::black_box(fingerprint(sql));
        })
    );
}
