//! ferroni's own metrics next to Patroni's: HA cycle duration, DCS read latency, leader changes seen,
//! and the progress and duration of image builds.

use crate::progress::Progress;
use ferroni_api::ExtraMetric;
use std::time::Duration;

#[derive(Default)]
pub struct LoopMetrics {
    cycle_seconds: f64,
    dcs_read_seconds: f64,
    leader_changes: u64,
    last_leader: Option<String>,
}

impl LoopMetrics {
    pub fn cycle(&mut self, took: Duration) {
        self.cycle_seconds = took.as_secs_f64();
    }

    /// A DCS read took `took`; `leader` is who held the lock (counts changes between reads).
    pub fn dcs_read(&mut self, took: Duration, leader: Option<&str>) {
        self.dcs_read_seconds = took.as_secs_f64();
        if let Some(l) = leader
            && self.last_leader.as_deref() != Some(l)
        {
            if self.last_leader.is_some() {
                self.leader_changes += 1;
            }
            self.last_leader = Some(l.to_string());
        }
    }

    pub fn samples(&self, progress: Option<&Progress>) -> Vec<ExtraMetric> {
        let m = |name, kind, help, value| ExtraMetric {
            name,
            kind,
            help,
            value,
        };
        let mut out = vec![
            m(
                "ferroni_ha_cycle_seconds",
                "gauge",
                "Duration of the last HA cycle.",
                self.cycle_seconds,
            ),
            m(
                "ferroni_dcs_read_seconds",
                "gauge",
                "Duration of the last read of the cluster from the DCS.",
                self.dcs_read_seconds,
            ),
            m(
                "ferroni_leader_changes_total",
                "counter",
                "Changes of the leader key holder seen by this node.",
                self.leader_changes as f64,
            ),
        ];
        if let Some(p) = progress {
            let running = if p.finished { 0.0 } else { 1.0 };
            out.push(m(
                "ferroni_image_build_running",
                "gauge",
                "1 while an image build (replica, bootstrap, reinit) runs.",
                running,
            ));
            out.push(m(
                "ferroni_image_build_bytes_done",
                "gauge",
                "Bytes written by the current or last image build.",
                p.bytes_done as f64,
            ));
            out.push(m(
                "ferroni_image_build_bytes_total",
                "gauge",
                "Bytes the current or last image build expects (0 when unknown).",
                p.bytes_total.unwrap_or(0) as f64,
            ));
            out.push(m(
                "ferroni_image_build_seconds",
                "gauge",
                "Elapsed seconds of the current or last image build.",
                p.elapsed_s,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leader_changes() {
        let mut m = LoopMetrics::default();
        m.dcs_read(Duration::from_millis(3), Some("a"));
        m.dcs_read(Duration::from_millis(3), Some("a"));
        m.dcs_read(Duration::from_millis(3), None);
        m.dcs_read(Duration::from_millis(3), Some("b"));
        let s = m.samples(None);
        assert_eq!(
            s.iter()
                .find(|x| x.name == "ferroni_leader_changes_total")
                .unwrap()
                .value,
            1.0
        );
    }
}
