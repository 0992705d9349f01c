//! The roofline report: rows of measured throughput against the bound of
//! the machine (from [`crate::probe`]), printed as a Markdown table and
//! written as JSON (by hand: the package needs no JSON dependency).

use std::fmt::Write as _;

/// One measured operation at one size.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// `"kl"`, `"kl_grad"`, `"kl_par"` or `"mrl_top_k"`.
    pub op: &'static str,
    /// `"f32"` or `"f64"`.
    pub dtype: &'static str,
    /// Dimension.
    pub d: usize,
    /// Pairs per call.
    pub batch: usize,
    /// Threads of the crate's run.
    pub threads: usize,
    /// What the seconds are: `"thread_cpu"` (on-CPU time of the one
    /// thread) or `"wall"` (every figure of a multi-threaded row, its
    /// one-thread peer included).
    pub clock: &'static str,
    /// The crate's throughput (median).
    pub pairs_per_s: f64,
    /// Flops per pair of the cost model (see the example's docs).
    pub flops_per_pair: f64,
    /// Bytes per pair read (and, for gradients, written).
    pub bytes_per_pair: f64,
    /// FMA peak of `threads` threads at the row's type, GFLOP/s.
    pub peak_gflops: f64,
    /// Read bandwidth of `threads` threads at the row's working set, GB/s.
    pub bandwidth_gbs: f64,
    /// Peers: name, pairs per second (median), largest relative difference
    /// from the crate seen in the check before timing.
    pub peers: Vec<(String, f64, f64)>,
}

impl Row {
    /// `min(peak ÷ flops, bandwidth ÷ bytes)`, pairs per second.
    pub fn bound_pairs_per_s(&self) -> f64 {
        let fma = self.peak_gflops * 1e9 / self.flops_per_pair;
        let mem = self.bandwidth_gbs * 1e9 / self.bytes_per_pair;
        fma.min(mem)
    }

    /// Which bound is the smaller: `"FMA"` or `"mem"`.
    pub fn bound_kind(&self) -> &'static str {
        let fma = self.peak_gflops * 1e9 / self.flops_per_pair;
        let mem = self.bandwidth_gbs * 1e9 / self.bytes_per_pair;
        if fma <= mem { "FMA" } else { "mem" }
    }

    /// `100 · pairs_per_s ÷ bound_pairs_per_s`.
    pub fn pct_of_bound(&self) -> f64 {
        100.0 * self.pairs_per_s / self.bound_pairs_per_s()
    }

    /// The fastest peer other than the crate's own references (whose
    /// names start with `gaussian-kl`): name and pairs per second.
    pub fn best_peer(&self) -> Option<(&str, f64)> {
        self.peers
            .iter()
            .filter(|(n, _, _)| !n.starts_with("gaussian-kl"))
            .map(|(n, r, _)| (n.as_str(), *r))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// The whole report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Model name, CPU count and SIMD flags.
    pub machine: String,
    /// The SIMD level the crate runs (`gaussian_kl::simd::Level`).
    pub level: String,
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// Single-thread FMA peak at `level`, GFLOP/s: (f32, f64).
    pub fma_peak_gflops: (f64, f64),
    /// Every probe: (level, dtype, threads, accumulators, GFLOP/s).
    pub fma_probes: Vec<(String, &'static str, usize, usize, f64)>,
    /// Every read probe: (working-set bytes, threads, GB/s).
    pub read_probes: Vec<(usize, usize, f64)>,
    /// Repetitions per figure and the minimum seconds of each.
    pub reps: usize,
    /// Minimum seconds per repetition.
    pub rep_secs: f64,
    /// The rows.
    pub rows: Vec<Row>,
}

/// A JSON number (`null` for NaN or infinity).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Report {
    /// The report as JSON: the keys of issue 13 (`machine`, `level`,
    /// `fma_peak_gflops`, `rows` with `op`, `dtype`, `d`, `batch`,
    /// `threads`, `pairs_per_s`, `flops_per_pair`, `bytes_per_pair`,
    /// `bound_pairs_per_s`, `pct_of_bound`, `peers`) plus what the bound
    /// was made of (`bound`, `peak_gflops`, `bandwidth_gbs` per row,
    /// `peer_max_rel_diff`, the probes, the date and the repetitions).
    pub fn to_json(&self) -> String {
        let mut o = String::from("{\n");
        let _ = writeln!(o, "  \"machine\": {},", string(&self.machine));
        let _ = writeln!(o, "  \"level\": {},", string(&self.level));
        let _ = writeln!(o, "  \"date\": {},", string(&self.date));
        let _ = writeln!(
            o,
            "  \"timing\": {},",
            string(&format!(
                "every figure the median of {} repetitions of at least {} s of wall-clock time after one warm-up repetition; single-thread figures (rows with clock thread_cpu, the single-thread probes) in the thread's on-CPU time, multi-threaded ones (kl_par, its one-thread peer, the 2-thread probes) in wall-clock time",
                self.reps, self.rep_secs
            ))
        );
        let _ = writeln!(
            o,
            "  \"fma_peak_gflops\": {{\"f32\": {}, \"f64\": {}}},",
            num(self.fma_peak_gflops.0),
            num(self.fma_peak_gflops.1)
        );
        let probes: Vec<String> = self
            .fma_probes
            .iter()
            .map(|(l, t, th, acc, g)| {
                format!(
                    "    {{\"level\": {}, \"dtype\": {}, \"threads\": {th}, \"accumulators\": {acc}, \"gflops\": {}}}",
                    string(l),
                    string(t),
                    num(*g)
                )
            })
            .collect();
        let _ = writeln!(o, "  \"fma_probes\": [\n{}\n  ],", probes.join(",\n"));
        let reads: Vec<String> = self
            .read_probes
            .iter()
            .map(|(b, th, g)| {
                format!(
                    "    {{\"bytes\": {b}, \"threads\": {th}, \"gbs\": {}}}",
                    num(*g)
                )
            })
            .collect();
        let _ = writeln!(o, "  \"read_probes\": [\n{}\n  ],", reads.join(",\n"));
        let rows: Vec<String> = self.rows.iter().map(row_json).collect();
        let _ = writeln!(o, "  \"rows\": [\n{}\n  ]", rows.join(",\n"));
        o.push_str("}\n");
        o
    }

    /// The rows as a Markdown table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        o.push_str("| op | type | d | batch | threads | pairs/s | bound (pairs/s) | bound by | % of bound | best peer | × best peer | peers (pairs/s) |\n");
        o.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let (bp, bx) = match r.best_peer() {
                Some((n, x)) => (
                    format!("{n} {}", si(x)),
                    format!("{:.1}", r.pairs_per_s / x),
                ),
                None => ("–".into(), "–".into()),
            };
            let peers: Vec<String> = r
                .peers
                .iter()
                .map(|(n, x, _)| format!("{n} {}", si(*x)))
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} % | {bp} | {bx} | {} |",
                r.op,
                r.dtype,
                r.d,
                r.batch,
                r.threads,
                si(r.pairs_per_s),
                si(r.bound_pairs_per_s()),
                r.bound_kind(),
                r.pct_of_bound(),
                peers.join(", ")
            );
        }
        o
    }
}

fn row_json(r: &Row) -> String {
    let peers: Vec<String> = r
        .peers
        .iter()
        .map(|(n, x, _)| format!("{}: {}", string(n), num(*x)))
        .collect();
    let diffs: Vec<String> = r
        .peers
        .iter()
        .map(|(n, _, e)| format!("{}: {}", string(n), num(*e)))
        .collect();
    format!(
        "    {{\"op\": {}, \"dtype\": {}, \"d\": {}, \"batch\": {}, \"threads\": {}, \"clock\": {}, \"pairs_per_s\": {}, \"flops_per_pair\": {}, \"bytes_per_pair\": {}, \"bound_pairs_per_s\": {}, \"pct_of_bound\": {}, \"bound\": {}, \"peak_gflops\": {}, \"bandwidth_gbs\": {}, \"peers\": {{{}}}, \"peer_max_rel_diff\": {{{}}}}}",
        string(r.op),
        string(r.dtype),
        r.d,
        r.batch,
        r.threads,
        string(r.clock),
        num(r.pairs_per_s),
        num(r.flops_per_pair),
        num(r.bytes_per_pair),
        num(r.bound_pairs_per_s()),
        num(r.pct_of_bound()),
        string(r.bound_kind()),
        num(r.peak_gflops),
        num(r.bandwidth_gbs),
        peers.join(", "),
        diffs.join(", ")
    )
}

/// `x` with an SI suffix: `81.2 M`, `44.0 k`, `439`.
pub fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Today's UTC date, `YYYY-MM-DD` (from the system clock).
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days to civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// One line of the targets table: what, the measured value, met or not.
fn target_line(o: &mut String, what: &str, value: String, met: bool) {
    let verdict = if met { "met" } else { "missed" };
    let _ = writeln!(o, "| {what} | {value} | {verdict} |");
}

impl Report {
    fn find(&self, op: &str, dtype: &str, d: usize, batch: Option<usize>) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.op == op && r.dtype == dtype && r.d == d && batch.is_none_or(|b| r.batch == b)
        })
    }

    fn peer(r: &Row, name: &str) -> Option<f64> {
        r.peers.iter().find(|p| p.0 == name).map(|p| p.1)
    }

    /// Issue 13 §2's targets against this run's rows, as a Markdown table
    /// (the accuracy target is not something this report measures).
    pub fn targets(&self) -> String {
        let mut o = String::from("| target (issue 13 §2) | measured | |\n|---|---|---|\n");
        if let Some(r) = self.find("kl", "f32", 3, Some(1 << 20)) {
            let v = r.pct_of_bound();
            let what = "d = 3, 1M pairs, f32: ≥ 60 % of the memory bound";
            target_line(
                &mut o,
                what,
                format!("{v:.1} % ({} bound)", r.bound_kind()),
                v >= 60.0,
            );
        }
        if let Some(r) = self.find("kl", "f32", 3, Some(4096))
            && let Some(p) = Self::peer(r, "nalgebra_SMatrix")
        {
            let v = r.pairs_per_s / p;
            let what = "d = 3, 4096 pairs, f32: ≥ 8× nalgebra `Matrix3`";
            target_line(&mut o, what, format!("{v:.1}×"), v >= 8.0);
        }
        for (d, pct) in [(16, 30.0), (64, 50.0), (128, 65.0), (256, 65.0)] {
            if let Some(r) = self.find("kl", "f32", d, None) {
                let v = r.pct_of_bound();
                let what = format!("`pct_of_bound` ≥ {pct:.0} % at d = {d} (f32)");
                target_line(&mut o, &what, format!("{v:.1} %"), v >= pct);
            }
        }
        for r in self.rows.iter().filter(|r| r.op == "kl") {
            if let Some((name, p)) = r.best_peer() {
                let v = r.pairs_per_s / p;
                let what = format!("≥ 5× the best peer, {} d = {} ({})", r.dtype, r.d, r.batch);
                target_line(&mut o, &what, format!("{v:.1}× ({name})"), v >= 5.0);
            }
        }
        for g in self.rows.iter().filter(|r| r.op == "kl_grad") {
            if let Some(f) = self.find("kl", "f32", g.d, Some(g.batch)) {
                let v = f.pairs_per_s / g.pairs_per_s;
                let what = format!("`kl_grad` ≤ 3× the time of `kl`, d = {} ({})", g.d, g.batch);
                target_line(&mut o, &what, format!("{v:.2}×"), v <= 3.0);
            }
        }
        for r in self
            .rows
            .iter()
            .filter(|r| r.op == "kl" && r.dtype == "f32")
        {
            if let Some(r64) = self.find("kl", "f64", r.d, Some(r.batch)) {
                let v = r64.pairs_per_s / r.pairs_per_s;
                let what = format!("f64 ≥ 0.45× f32, d = {} ({})", r.d, r.batch);
                target_line(&mut o, &what, format!("{v:.2}×"), v >= 0.45);
            }
        }
        for r in self.rows.iter().filter(|r| r.op == "kl_par") {
            if let Some(s) = Self::peer(r, "gaussian-kl_1_thread") {
                let v = r.pairs_per_s / s;
                let what = format!(
                    "`kl_par`, {} threads ≥ 1.8× one thread, d = {} ({})",
                    r.threads, r.d, r.batch
                );
                target_line(&mut o, &what, format!("{v:.2}×"), v >= 1.8);
            }
        }
        for r in self.rows.iter().filter(|r| r.op == "mrl_top_k") {
            let v = 100.0 * r.pairs_per_s * r.flops_per_pair / (r.peak_gflops * 1e9);
            let what = format!("`mrl_top_k` ≥ 70 % of the FMA peak (k = {})", r.d);
            target_line(&mut o, &what, format!("{v:.1} %"), v >= 70.0);
        }
        o
    }
}
