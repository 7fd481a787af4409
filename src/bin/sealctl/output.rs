//! How `sealctl` prints the daemon's answers: aligned tables, one field per line, or with `--json`
//! the API's JSON as it came; and text written to a file or to standard output.

use crate::remote::{local, Conn, Failure};
use serde_json::Value;
use std::path::PathBuf;

/// A JSON value as a table cell: `-` for null, strings unquoted.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field as a table cell: times (`*_ms`, milliseconds since the epoch) as RFC 3339 in UTC.
pub fn cell_at(key: &str, v: &Value) -> String {
    match (key.ends_with("_ms"), v.as_u64()) {
        (true, Some(ms)) => rfc3339(ms),
        _ => cell(v),
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, to the second).
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| ms.to_string())
}

/// Prints rows of objects as an aligned table of `columns`.
pub fn table(rows: &[Value], columns: &[(&str, &str)]) {
    let mut grid: Vec<Vec<String>> = vec![columns.iter().map(|(_, h)| h.to_string()).collect()];
    for r in rows {
        grid.push(columns.iter().map(|(k, _)| cell_at(k, k.split('.').fold(r, |v, part| &v[part]))).collect());
    }
    let widths: Vec<usize> =
        (0..columns.len()).map(|i| grid.iter().map(|row| row[i].chars().count()).max().unwrap_or(0)).collect();
    for row in grid {
        let line: Vec<String> =
            row.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Prints an object's fields, one per line (long values shortened).
pub fn fields(v: &Value) {
    if let Some(o) = v.as_object() {
        for (k, val) in o {
            let mut s = cell_at(k, val);
            if s.chars().count() > 100 {
                s = format!("{}... ({} chars)", s.chars().take(60).collect::<String>(), s.chars().count());
            }
            println!("{k:<14} {s}");
        }
    }
}

/// Prints `v` as JSON with `--json`, else as `human` prints it.
pub fn out(c: &Conn, v: &Value, human: impl FnOnce(&Value)) {
    if c.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        human(v);
    }
}

/// Prints the array `key` of an answer as a table of `columns`; with `--json`, the whole answer.
pub fn out_table(c: &Conn, v: &Value, key: &str, columns: &[(&str, &str)]) {
    out(c, v, |v| {
        table(v[key].as_array().map(Vec::as_slice).unwrap_or_default(), columns);
        more(v);
    });
}

/// Under a page's table, on standard error: how to get the next page, when there is one.
pub fn more(v: &Value) {
    if let Some(c) = v["next_cursor"].as_str() {
        eprintln!("more on the next page: --cursor {c} (or --all for every page)");
    }
}

/// Writes `text` to `path`, or prints it to standard output.
pub fn write_or_print(path: Option<PathBuf>, text: &str) -> Result<(), Failure> {
    match path {
        Some(p) => std::fs::write(&p, text).map_err(|e| local(format!("{}: {e}", p.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// The progress of a long transfer, on standard error when it is a terminal (never in a pipe or a
/// log): bytes so far, of how many, the rate and the time left, redrawn at most 5 times a second.
pub struct Progress {
    label: String,
    start: std::time::Instant,
    last: Option<std::time::Instant>,
    on_terminal: bool,
}

impl Progress {
    /// A progress line headed `label`.
    pub fn new(label: &str) -> Self {
        use std::io::IsTerminal as _;
        Progress {
            label: label.to_string(),
            start: std::time::Instant::now(),
            last: None,
            on_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// `received` bytes so far, of `total` when known.
    pub fn update(&mut self, received: u64, total: Option<u64>) {
        let now = std::time::Instant::now();
        if !self.on_terminal || self.last.is_some_and(|l| now - l < std::time::Duration::from_millis(200)) {
            return;
        }
        self.last = Some(now);
        let secs = (now - self.start).as_secs_f64().max(0.001);
        let rate = received as f64 / secs;
        let of = match total {
            Some(t) if t > 0 => {
                let left = t.saturating_sub(received) as f64 / rate.max(1.0);
                format!(
                    " of {} ({:.0}%), {}/s, {:.0} s left",
                    size(t),
                    received as f64 * 100.0 / t as f64,
                    size(rate as u64),
                    left
                )
            }
            _ => format!(", {}/s", size(rate as u64)),
        };
        eprint!("\r{}: {}{of}   ", self.label, size(received));
    }

    /// `received` bytes so far, carrying `done` of `total` records.
    pub fn records(&mut self, received: u64, done: u64, total: u64) {
        let now = std::time::Instant::now();
        if !self.on_terminal || self.last.is_some_and(|l| now - l < std::time::Duration::from_millis(200)) {
            return;
        }
        self.last = Some(now);
        let secs = (now - self.start).as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let left = total.saturating_sub(done) as f64 / rate.max(1.0);
        eprint!(
            "\r{}: {done} of {total} records ({:.0}%), {}, {}/s, {left:.0} s left   ",
            self.label,
            done as f64 * 100.0 / total.max(1) as f64,
            size(received),
            size((received as f64 / secs) as u64),
        );
    }

    /// `done` things (`what`) so far, with the rate.
    pub fn update_count(&mut self, done: u64, what: &str) {
        let now = std::time::Instant::now();
        if !self.on_terminal || self.last.is_some_and(|l| now - l < std::time::Duration::from_millis(200)) {
            return;
        }
        self.last = Some(now);
        let rate = done as f64 / (now - self.start).as_secs_f64().max(0.001);
        eprint!("\r{}: {done} {what}, {rate:.0}/s   ", self.label);
    }

    /// Ends the line (if one was drawn).
    pub fn finish(&mut self) {
        if self.on_terminal && self.last.is_some() {
            eprintln!();
        }
    }
}

/// `n` bytes for people: B, KiB, MiB, GiB.
pub fn size(n: u64) -> String {
    match n {
        n if n < 1 << 10 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
    }
}

/// One step of a verification report: `ok`, `FAIL` or `--` (did not run), its name and what was found.
pub fn step_line(indent: &str, ok: Option<bool>, step: &str, detail: &str) {
    let mark = match ok {
        Some(true) => "ok  ",
        Some(false) => "FAIL",
        None => "--  ",
    };
    println!("{indent}  {mark} {step:<20} {detail}");
}
