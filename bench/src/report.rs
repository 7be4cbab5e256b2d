//! The table of medians and ratios, and the JSON object.

use crate::stats::{fmt_secs, ratio, round};
use serde_json::{Map, Value};

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// The figure must be at most this.
    AtMost(f64),
    /// The figure must be at least this.
    AtLeast(f64),
    /// No target: shown for information.
    Info,
}

impl Goal {
    /// Whether `v` meets the goal (NaN never does).
    pub fn met(self, v: f64) -> bool {
        match self {
            Goal::AtMost(limit) => v <= limit,
            Goal::AtLeast(limit) => v >= limit,
            Goal::Info => true,
        }
    }

    fn text(self, unit: &str) -> String {
        match self {
            Goal::AtMost(l) => format!("≤ {l}{unit}"),
            Goal::AtLeast(l) => format!("≥ {l}{unit}"),
            Goal::Info => "—".into(),
        }
    }
}

/// How the broker and direct figures are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (shown as µs / ms / s); lower is better.
    Seconds,
    /// Operations per second; higher is better.
    PerSecond,
    /// MiB; only the broker has a figure, compared with the goal itself.
    MiB,
    /// A count per operation (instructions per lookup); the broker's
    /// figure is compared with the goal itself, the other column is the
    /// reference (PgBouncer's).
    Count,
}

/// One row of the table and, through `key`, one field of the JSON.
#[derive(Debug, Clone)]
pub struct Line {
    /// Measurement name as shown.
    pub name: String,
    /// JSON key.
    pub key: &'static str,
    /// Broker median.
    pub broker: f64,
    /// Direct median (NaN for [`Unit::MiB`]).
    pub direct: f64,
    /// What the figures are.
    pub unit: Unit,
    /// The target.
    pub goal: Goal,
}

impl Line {
    /// broker ÷ direct, or the broker figure itself for [`Unit::MiB`] and
    /// [`Unit::Count`].
    pub fn value(&self) -> f64 {
        match self.unit {
            Unit::MiB | Unit::Count => self.broker,
            _ => ratio(self.broker, self.direct),
        }
    }

    /// Whether the target is met.
    pub fn met(&self) -> bool {
        self.goal.met(self.value())
    }

    fn show(&self, v: f64) -> String {
        if !v.is_finite() {
            return "—".into();
        }
        match self.unit {
            Unit::Seconds => fmt_secs(v),
            Unit::PerSecond => format!("{v:.0}/s"),
            Unit::MiB => format!("{v:.1} MiB"),
            // Small counts (system calls) with their fraction.
            Unit::Count if v < 100.0 => format!("{v:.2}"),
            Unit::Count => thousands(v.round() as u64),
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Rows in measurement order.
    pub lines: Vec<Line>,
    /// Notes printed under the table.
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a row.
    pub fn add(&mut self, line: Line) {
        self.lines.push(line);
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// `{"open_ratio": 0.05, …}`: one key per row, in row order.
    pub fn json(&self) -> Value {
        let mut map = Map::new();
        for line in &self.lines {
            let v = line.value();
            let digits = match line.unit {
                Unit::MiB => 1,
                Unit::Count if v < 100.0 => 2,
                Unit::Count => 0,
                _ => 3,
            };
            let json = |v: f64| {
                if v.is_finite() {
                    Value::from(round(v, digits))
                } else {
                    Value::Null
                }
            };
            map.insert(line.key.to_owned(), json(v));
            // A count's reference (PgBouncer's) is a figure of its own.
            if matches!(line.unit, Unit::Count) && line.direct.is_finite() {
                map.insert(format!("{}_pgbouncer", line.key), json(line.direct));
            }
        }
        Value::Object(map)
    }

    /// The table, with a header naming the machine and the load.
    pub fn table(&self, header: &[String]) -> String {
        let head = ["measurement", "broker", "direct", "ratio", "target", ""];
        let rows: Vec<[String; 6]> = self
            .lines
            .iter()
            .map(|l| {
                let (ratio, target) = match l.unit {
                    Unit::MiB => (l.show(l.broker), l.goal.text(" MiB")),
                    Unit::Count => (l.show(l.broker), l.goal.text("")),
                    _ => {
                        let r = l.value();
                        let shown = if r.is_finite() {
                            format!("{r:.3}")
                        } else {
                            "—".into()
                        };
                        (shown, l.goal.text(""))
                    }
                };
                [
                    l.name.clone(),
                    if l.unit == Unit::MiB {
                        "peak growth".into()
                    } else {
                        l.show(l.broker)
                    },
                    l.show(l.direct),
                    ratio,
                    target,
                    match (l.goal, l.met()) {
                        (Goal::Info, _) => "",
                        (_, true) => "met",
                        (_, false) => "MISSED",
                    }
                    .into(),
                ]
            })
            .collect();
        let mut widths = head.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for h in header {
            out.push_str(h);
            out.push('\n');
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                // Names left-aligned, figures right-aligned.
                if i == 0 || i == 5 {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
                s.push_str("  ");
            }
            s.trim_end().to_owned() + "\n"
        };
        out.push_str(&line(&head.map(String::from)));
        out.push_str(&line(&widths.map(|w| "-".repeat(w))));
        for row in &rows {
            out.push_str(&line(row));
        }
        for note in &self.notes {
            out.push_str("note: ");
            out.push_str(note);
            out.push('\n');
        }
        out
    }
}

/// `74025` → `74,025`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::default();
        r.add(Line {
            name: "open".into(),
            key: "open_ratio",
            broker: 0.0002,
            direct: 0.004,
            unit: Unit::Seconds,
            goal: Goal::AtMost(0.1),
        });
        r.add(Line {
            name: "big_result rss".into(),
            key: "big_result_rss_growth_mib",
            broker: 40.04,
            direct: f64::NAN,
            unit: Unit::MiB,
            goal: Goal::AtMost(32.0),
        });
        r.add(Line {
            name: "concurrent".into(),
            key: "concurrent_throughput_ratio",
            broker: 9000.0,
            direct: 10000.0,
            unit: Unit::PerSecond,
            goal: Goal::AtLeast(0.8),
        });
        r
    }

    #[test]
    fn json_has_one_key_per_line() {
        let j = sample().json();
        assert_eq!(j["open_ratio"], 0.05);
        assert_eq!(j["big_result_rss_growth_mib"], 40.0);
        assert_eq!(j["concurrent_throughput_ratio"], 0.9);
        assert_eq!(j.as_object().unwrap().len(), 3);
    }

    #[test]
    fn table_says_met_and_missed() {
        let r = sample();
        assert!(r.lines[0].met());
        assert!(!r.lines[1].met());
        assert!(r.lines[2].met());
        let t = r.table(&["machine".into()]);
        assert!(t.starts_with("machine\nmeasurement"), "{t}");
        assert!(t.contains("200 µs"), "{t}");
        assert!(t.contains("4.00 ms"), "{t}");
        assert!(t.contains("0.050"), "{t}");
        assert!(t.contains("≤ 32 MiB"), "{t}");
        assert!(t.contains("MISSED"), "{t}");
        assert!(t.contains("9000/s"), "{t}");
    }

    #[test]
    fn nan_is_null_and_missed() {
        let mut r = Report::default();
        r.add(Line {
            name: "x".into(),
            key: "x_ratio",
            broker: f64::NAN,
            direct: 1.0,
            unit: Unit::Seconds,
            goal: Goal::AtMost(1.0),
        });
        assert!(r.json()["x_ratio"].is_null());
        assert!(!r.lines[0].met());
    }
}
