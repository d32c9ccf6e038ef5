//! Progress of an image build (basebackup, custom replica method, custom bootstrap, reinitialize):
//! bytes done and expected, rate, elapsed and estimated time left, method and source. Basebackup
//! reports through pg_basebackup's `--progress` lines; other methods are measured by the growth of
//! the data directory. Shown in `/patroni`, the member key and `/metrics`.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub bytes_done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    pub rate_bytes_per_s: f64,
    pub elapsed_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
    pub attempt: u32,
    /// What happens now, e.g. "attempt 1 failed: ...; next attempt in 5 s".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub finished: bool,
}

struct State {
    progress: Progress,
    started: Instant,
}

/// Shared between the background action that updates it and the loop that publishes it.
#[derive(Clone, Default)]
pub struct Tracker {
    inner: Arc<Mutex<Option<State>>>,
}

impl Tracker {
    fn with<R>(&self, f: impl FnOnce(&mut Option<State>) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn start(&self, method: &str, source: Option<&str>) {
        self.with(|s| {
            *s = Some(State {
                progress: Progress {
                    method: method.to_string(),
                    source: source.map(str::to_string),
                    bytes_done: 0,
                    bytes_total: None,
                    percent: None,
                    rate_bytes_per_s: 0.0,
                    elapsed_s: 0.0,
                    eta_s: None,
                    attempt: 1,
                    note: None,
                    finished: false,
                },
                started: Instant::now(),
            })
        });
    }

    /// Bytes done (monotonic within an attempt) and, when known, expected.
    pub fn update(&self, done: u64, total: Option<u64>) {
        self.with(|s| {
            let Some(st) = s.as_mut() else { return };
            let elapsed = st.started.elapsed().as_secs_f64();
            let p = &mut st.progress;
            p.bytes_done = done;
            p.bytes_total = total.or(p.bytes_total);
            p.elapsed_s = elapsed;
            p.rate_bytes_per_s = if elapsed > 0.0 { done as f64 / elapsed } else { 0.0 };
            p.percent = p
                .bytes_total
                .filter(|t| *t > 0)
                .map(|t| (done as f64 * 100.0 / t as f64).min(100.0));
            p.eta_s = match (p.bytes_total, p.rate_bytes_per_s) {
                (Some(t), r) if r > 0.0 && t >= done => Some((t - done) as f64 / r),
                _ => None,
            };
            p.note = None;
        });
    }

    pub fn retry(&self, attempt: u32, error: &str, delay: Duration) {
        self.with(|s| {
            let Some(st) = s.as_mut() else { return };
            st.progress.attempt = attempt + 1;
            st.progress.bytes_done = 0;
            st.progress.note = Some(format!(
                "attempt {attempt} failed: {error}; next attempt in {} s",
                delay.as_secs()
            ));
        });
    }

    /// Marks the build done; the last progress stays visible until the next build starts.
    pub fn finish(&self, ok: bool) {
        self.with(|s| {
            let Some(st) = s.as_mut() else { return };
            st.progress.finished = true;
            st.progress.elapsed_s = st.started.elapsed().as_secs_f64();
            st.progress.eta_s = None;
            if ok {
                if let Some(total) = st.progress.bytes_total {
                    st.progress.bytes_done = st.progress.bytes_done.max(total);
                }
                st.progress.percent = Some(100.0);
            }
        });
    }

    pub fn snapshot(&self) -> Option<Progress> {
        self.with(|s| {
            s.as_ref().map(|st| {
                let mut p = st.progress.clone();
                if !p.finished {
                    p.elapsed_s = st.started.elapsed().as_secs_f64();
                }
                p
            })
        })
    }
}

/// Bytes in `dir`, following no symlinks; unreadable entries count as zero.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// Polls the data directory's size every second into `tracker` until the returned guard drops.
pub fn watch_dir(tracker: Tracker, dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let d = dir.clone();
            let size = tokio::task::spawn_blocking(move || dir_size(&d)).await.unwrap_or(0);
            tracker.update(size, None);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_percent_and_eta() {
        let t = Tracker::default();
        t.start("basebackup", Some("n0"));
        std::thread::sleep(Duration::from_millis(20));
        t.update(50, Some(200));
        let p = t.snapshot().unwrap();
        assert_eq!(p.percent, Some(25.0));
        assert!(p.rate_bytes_per_s > 0.0 && p.eta_s.is_some_and(|e| e > 0.0));
        t.retry(1, "connection refused", Duration::from_secs(5));
        let p = t.snapshot().unwrap();
        assert_eq!(p.attempt, 2);
        assert!(p.note.unwrap().contains("next attempt in 5 s"));
        t.update(200, None);
        t.finish(true);
        let p = t.snapshot().unwrap();
        assert!(p.finished && p.percent == Some(100.0) && p.bytes_done == 200);
    }

    #[test]
    fn measures_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a"), [0u8; 100]).unwrap();
        std::fs::write(d.path().join("sub/b"), [0u8; 50]).unwrap();
        assert_eq!(dir_size(d.path()), 150);
    }
}
