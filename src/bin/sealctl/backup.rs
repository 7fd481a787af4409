//! `sealctl backup --out FILE [--resume]`: a signed backup through the daemon (system administrator),
//! streamed into `FILE.part` as it arrives and renamed to `FILE` when whole. A download cut short
//! leaves `FILE.part`; `--resume` keeps its whole records and asks the daemon for the rest.

use crate::output::{size, Progress};
use crate::remote::{local, refused, Conn, Failure};
use seald::backup::{Header, Trailer};
use std::fs::File;
use std::io::{BufRead as _, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Longest header or trailer line.
const MAX_LINE: usize = 1 << 20;

/// `sealctl backup --out FILE [--resume]`.
pub fn run(c: &Conn, out_path: &Path, resume: bool) -> Result<(), Failure> {
    let part = PathBuf::from(format!("{}.part", out_path.display()));
    let shown = |e: std::io::Error| local(format!("{}: {e}", part.display()));
    let (file, expect, path) = if resume {
        let (file, header, records) = reopen(&part)?;
        let from = header.first_seq + records;
        eprintln!(
            "resuming {}: {records} of {} records are there; asking for records {from} to {}",
            part.display(),
            header.records(),
            header.head_seq
        );
        let path = format!("/v1/admin/backup?from={from}&head={}", header.head_seq);
        (file, Some((header, records)), path)
    } else {
        if part.exists() {
            return Err(local(format!(
                "{} is there from a download cut short: --resume to go on with it, or remove it to start again",
                part.display()
            )));
        }
        (File::create(&part).map_err(shown)?, None, "/v1/admin/backup".to_string())
    };
    let mut rx = Receiver::new(file, expect);
    let mut progress = Progress::new("backup");
    let mut failed_body = Vec::new();
    let mut local_error = None;
    let status = c.endpoint.stream(&path, |status, chunk| {
        if status >= 400 {
            if failed_body.len() < 64 << 10 {
                failed_body.extend_from_slice(chunk);
            }
            return Ok(());
        }
        match rx.feed(chunk) {
            Ok(()) => {
                progress.records(rx.received, rx.records, rx.total);
                Ok(())
            }
            Err(e) => {
                local_error = Some(e);
                Err("stopped".into())
            }
        }
    });
    progress.finish();
    if let Some(e) = local_error {
        return Err(local(format!("{}: {e} (the part stays; run again with --resume)", part.display())));
    }
    let status = status.map_err(|f| Failure {
        status: f.status,
        message: format!("{} ({} kept: run again with --resume to go on)", f.message, part.display()),
    })?;
    if status >= 400 {
        // Nothing of a backup came: a new part file goes (a resumed one keeps what it had).
        if !resume {
            let _ = std::fs::remove_file(&part);
        }
        return Err(refused(status, &serde_json::from_slice(&failed_body).unwrap_or_default(), ""));
    }
    let trailer = rx.finish().map_err(|e| {
        local(format!("{}: {e} (the answer ended early; run again with --resume to go on)", part.display()))
    })?;
    std::fs::rename(&part, out_path).map_err(|e| local(format!("{}: {e}", out_path.display())))?;
    if let Some(dir) = out_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    let bytes = std::fs::metadata(out_path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "backup of records {}..{} written to {} ({}; restore with `seald restore` while the daemon is stopped)",
        trailer.manifest.first_seq,
        trailer.manifest.head_seq,
        out_path.display(),
        size(bytes)
    );
    Ok(())
}

/// A part file opened to go on: its header, and its whole records (anything after them is cut off).
fn reopen(part: &Path) -> Result<(File, Header, u64), Failure> {
    let shown = |e: std::io::Error| local(format!("{}: {e}", part.display()));
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(part).map_err(shown)?;
    let len = file.metadata().map_err(shown)?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, &mut file);
    let mut line = Vec::new();
    let _ = (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut line).map_err(shown)?;
    let not_a_backup = |why: String| {
        local(format!("{} does not start as a backup does ({why}): remove it and start again", part.display()))
    };
    let text = line.strip_suffix(b"\n").ok_or_else(|| not_a_backup("no whole header line".into()))?;
    let header: Header = serde_json::from_slice(text).map_err(|e| not_a_backup(e.to_string()))?;
    // Whole, intact records only: a length out of bounds or a checksum that fails (a torn write)
    // ends what is kept.
    let (mut at, mut records) = (line.len() as u64, 0u64);
    let mut payload = Vec::new();
    while records < header.records() {
        let mut head = [0u8; 8];
        if at + 8 > len || r.read_exact(&mut head).is_err() {
            break;
        }
        let n = u32::from_le_bytes(head[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if n == 0 || n > seald::audit::MAX_RECORD || at + 8 + n as u64 > len {
            break;
        }
        payload.resize(n, 0);
        if r.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        at += 8 + n as u64;
        records += 1;
    }
    drop(r);
    file.set_len(at).map_err(shown)?;
    let _ = file.seek(std::io::SeekFrom::End(0)).map_err(shown)?;
    Ok((file, header, records))
}

/// Where the stream is.
enum Stage {
    Header,
    Frames,
    Trailer,
}

/// Takes the answer part by part: the header line, whole frames (checksums checked), the trailer.
struct Receiver {
    out: std::io::BufWriter<File>,
    pending: Vec<u8>,
    stage: Stage,
    /// Resuming: the part file's header and records already there.
    expect: Option<(Header, u64)>,
    /// Records in the file, of `total`.
    records: u64,
    total: u64,
    /// Bytes of this answer.
    received: u64,
    trailer: Vec<u8>,
}

impl Receiver {
    fn new(file: File, expect: Option<(Header, u64)>) -> Self {
        let (records, total) = expect.as_ref().map_or((0, 0), |(h, n)| (*n, h.records()));
        Receiver {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            pending: Vec::new(),
            stage: Stage::Header,
            expect,
            records,
            total,
            received: 0,
            trailer: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.received += chunk.len() as u64;
        self.pending.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            let rest = &self.pending[pos..];
            match self.stage {
                Stage::Header => {
                    let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                        if rest.len() > MAX_LINE {
                            return Err("the answer does not start with a backup header".into());
                        }
                        break;
                    };
                    let h: Header = serde_json::from_slice(&rest[..nl])
                        .map_err(|e| format!("the answer does not start with a backup header: {e}"))?;
                    match &self.expect {
                        Some((e, n)) => {
                            if (h.first_seq, h.head_seq, h.from_seq) != (e.first_seq, e.head_seq, e.first_seq + n) {
                                return Err(format!(
                                    "the daemon sent records {}..{} of a backup of {}..{}, not the rest of this one",
                                    h.from_seq, h.head_seq, h.first_seq, h.head_seq
                                ));
                            }
                        }
                        None => {
                            self.total = h.records();
                            self.out.write_all(&rest[..=nl]).map_err(|e| e.to_string())?;
                        }
                    }
                    pos += nl + 1;
                    self.stage = Stage::Frames;
                }
                Stage::Frames if self.records == self.total => self.stage = Stage::Trailer,
                Stage::Frames => {
                    if rest.len() < 8 {
                        break;
                    }
                    let len = u32::from_le_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
                    let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
                    if len == 0 || len > seald::audit::MAX_RECORD {
                        return Err(format!("record {} of the answer has an impossible length", self.records + 1));
                    }
                    if rest.len() < 8 + len {
                        break;
                    }
                    if crc32fast::hash(&rest[8..8 + len]) != crc {
                        return Err(format!("record {} of the answer fails its checksum", self.records + 1));
                    }
                    self.out.write_all(&rest[..8 + len]).map_err(|e| e.to_string())?;
                    pos += 8 + len;
                    self.records += 1;
                }
                Stage::Trailer => {
                    if self.trailer.len() + rest.len() > MAX_LINE {
                        return Err("the backup's trailer is too long".into());
                    }
                    self.trailer.extend_from_slice(rest);
                    self.out.write_all(rest).map_err(|e| e.to_string())?;
                    pos = self.pending.len();
                    break;
                }
            }
        }
        let _ = self.pending.drain(..pos);
        Ok(())
    }

    /// The whole answer is in: the trailer, and the file synced.
    fn finish(self) -> Result<Trailer, String> {
        let line = match self.stage {
            Stage::Trailer => self.trailer.strip_suffix(b"\n").ok_or("the backup's trailer is cut short")?,
            _ => return Err(format!("{} of {} records came", self.records, self.total)),
        };
        let trailer: Trailer =
            serde_json::from_slice(line).map_err(|e| format!("the backup's trailer does not decode: {e}"))?;
        let file = self.out.into_inner().map_err(|e| e.error().to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        Ok(trailer)
    }
}
