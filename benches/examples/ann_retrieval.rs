//! KL retrieval of diagonal Gaussians served by a real inner-product ANN index
//! (`usearch`'s HNSW graph with `MetricKind::IP`), measured against the crate's
//! exact top-k by KL.
//!
//! The Eq. 10 score of a query `p` and a document `q` is a plain dot product
//! `a · b` of the query vector `a` ([`diag::query_vectors`]) and the document
//! vector `b` ([`diag::doc_vectors`]), and for a fixed query it ranks the
//! documents exactly as `KL(p‖q)` does (the two differ by terms of the query
//! alone). So a maximum-inner-product index over the document vectors serves
//! the KL ranking. The vectors are **not normalized**, and must not be: a
//! cosine metric divides by `‖b‖` and ranks wrongly (the table shows how far).
//!
//! For each representation, `Rep::Compact` (`2d + 1` numbers) and `Rep::Wide`
//! (`3d + 1`, the MRL paper's map), the example builds a usearch index on the
//! raw document vectors (exact search is right; its HNSW graph degenerates) and
//! one on the vectors with the norm coordinate `√(M² − ‖b‖²)` appended (the
//! query gets a `0`; a proper graph, see `docs/retrieval.md`), then
//! reports recall@10 against the exact top-10 by KL (the crate's
//! `search::top_k` in `f64`), single-thread queries per second at several
//! search widths (`ef`), the build time, and the bytes per document.
//!
//! Run (release; the defaults took 3 min 13 s on a shared 2-core machine,
//! most of it building the two graphs with the norm coordinate; the feature
//! `numkong` gives usearch its SIMD distances, as measured in the docs):
//!
//! ```text
//! cargo run --release -p gaussian-kl-bench --features numkong --example ann_retrieval -- \
//!     [--docs 100000] [--queries 300] [--dim 128] [--threads 2] [--seed 7] \
//!     [--connectivity 16] [--ef-add 64] [--ef 16,64,256,512]
//! ```
//!
//! Data (seeded): document means `N(0, 1)`, variances log-uniform on
//! `[0.1, 1]`; each query is a random document's mean plus `N(0, 0.5²)` noise,
//! with its own log-uniform variances. With `--clusters C > 0` the document
//! means are instead `centre + N(0, 0.5²)` around `C` centres drawn `N(0, 1)`
//! (each document in a random cluster), like embeddings that cluster by
//! topic. Results are written to
//! `docs/retrieval.md` by hand.

use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Hits, Metric};
use gaussian_kl::{DiagGaussians, Exec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::error::Error;
use std::time::Instant;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

type Res<T> = Result<T, Box<dyn Error>>;

/// Command-line settings.
struct Args {
    docs: usize,
    queries: usize,
    dim: usize,
    threads: usize,
    seed: u64,
    connectivity: usize,
    ef_add: usize,
    ef: Vec<usize>,
    clusters: usize,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        docs: 100_000,
        queries: 300,
        dim: 128,
        threads: 2,
        seed: 7,
        connectivity: 16,
        ef_add: 64,
        ef: vec![16, 64, 256, 512],
        clusters: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || value.parse::<usize>();
        match flag.as_str() {
            "--docs" => a.docs = num()?,
            "--queries" => a.queries = num()?,
            "--dim" => a.dim = num()?,
            "--threads" => a.threads = num()?.max(1),
            "--seed" => a.seed = value.parse()?,
            "--connectivity" => a.connectivity = num()?,
            "--ef-add" => a.ef_add = num()?,
            "--clusters" => a.clusters = num()?,
            "--ef" => {
                a.ef = value.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    if a.docs < 10 || a.queries == 0 || a.dim == 0 {
        return Err("need --docs ≥ 10, --queries ≥ 1, --dim ≥ 1".into());
    }
    Ok(a)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Log-uniform on `[0.1, 1]`: one decade, like learned variances.
fn log_uniform(rng: &mut StdRng) -> f64 {
    10f64.powf(-rng.random::<f64>())
}

/// The synthetic collection: `(means, variances)` of documents and queries, in `f64`.
struct Data {
    doc_mean: Vec<f64>,
    doc_var: Vec<f64>,
    q_mean: Vec<f64>,
    q_var: Vec<f64>,
}

fn generate(a: &Args) -> Data {
    let mut rng = StdRng::seed_from_u64(a.seed);
    let nd = a.docs * a.dim;
    let doc_mean: Vec<f64> = if a.clusters == 0 {
        (0..nd).map(|_| normal(&mut rng)).collect()
    } else {
        let centres: Vec<f64> = (0..a.clusters * a.dim).map(|_| normal(&mut rng)).collect();
        let mut m = Vec::with_capacity(nd);
        for _ in 0..a.docs {
            let c = rng.random_range(0..a.clusters);
            for p in 0..a.dim {
                m.push(centres[c * a.dim + p] + 0.5 * normal(&mut rng));
            }
        }
        m
    };
    let doc_var: Vec<f64> = (0..nd).map(|_| log_uniform(&mut rng)).collect();
    let mut q_mean = Vec::with_capacity(a.queries * a.dim);
    for _ in 0..a.queries {
        let src = rng.random_range(0..a.docs);
        for p in 0..a.dim {
            q_mean.push(doc_mean[src * a.dim + p] + 0.5 * normal(&mut rng));
        }
    }
    let q_var = (0..a.queries * a.dim)
        .map(|_| log_uniform(&mut rng))
        .collect();
    Data {
        doc_mean,
        doc_var,
        q_mean,
        q_var,
    }
}

/// The same collection rounded to `f32` (what the ANN index stores).
struct F32Data {
    n: usize,
    nq: usize,
    d: usize,
    doc_mean: Vec<f32>,
    doc_var: Vec<f32>,
    q_mean: Vec<f32>,
    q_var: Vec<f32>,
}

impl F32Data {
    fn new(a: &Args, data: &Data) -> Self {
        let f = |x: &[f64]| x.iter().map(|&v| v as f32).collect();
        Self {
            n: a.docs,
            nq: a.queries,
            d: a.dim,
            doc_mean: f(&data.doc_mean),
            doc_var: f(&data.doc_var),
            q_mean: f(&data.q_mean),
            q_var: f(&data.q_var),
        }
    }

    fn docs(&self) -> Res<DiagGaussians<'_, f32>> {
        Ok(DiagGaussians::var(
            self.n,
            self.d,
            &self.doc_mean,
            &self.doc_var,
        )?)
    }

    fn queries(&self) -> Res<DiagGaussians<'_, f32>> {
        Ok(DiagGaussians::var(
            self.nq,
            self.d,
            &self.q_mean,
            &self.q_var,
        )?)
    }
}

/// Mean over queries of `|found ∩ truth| / |truth|`.
fn recall(truth: &Hits<f64>, found: &[Vec<usize>]) -> f64 {
    let mut sum = 0.0;
    for (i, f) in found.iter().enumerate() {
        let t = truth.row(i).0;
        let hit = f.iter().filter(|j| t.contains(j)).count();
        sum += hit as f64 / t.len().max(1) as f64;
    }
    sum / found.len().max(1) as f64
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks that `query_vector · doc_vector` reproduces the crate's Eq. 10 scores
/// (`search::scores`) on the first 4 queries × 8 documents, for both layouts.
fn check_eq10(a: &Args, data: &Data) -> Res<()> {
    let (nq, nd, d) = (4.min(a.queries), 8, a.dim);
    let q = DiagGaussians::var(nq, d, &data.q_mean[..nq * d], &data.q_var[..nq * d])?;
    let docs = DiagGaussians::var(nd, d, &data.doc_mean[..nd * d], &data.doc_var[..nd * d])?;
    let mut want = vec![0.0f64; nq * nd];
    search::scores(
        &DocIndex::new(&docs)?,
        &q,
        Metric::Eq10,
        &mut want,
        &Exec::new(),
    )?;
    for rep in [Rep::Compact, Rep::Wide] {
        let len = rep.len(d);
        let (mut qv, mut dv) = (vec![0.0; nq * len], vec![0.0; nd * len]);
        diag::query_vectors(rep, &q, &mut qv)?;
        diag::doc_vectors(rep, &docs, &mut dv)?;
        let mut worst = 0.0f64;
        for i in 0..nq {
            for j in 0..nd {
                let (x, y) = (&qv[i * len..][..len], &dv[j * len..][..len]);
                // The error of a dot product is absolute, about ε · Σ|terms|.
                let mag: f64 = x.iter().zip(y).map(|(s, t)| (s * t).abs()).sum();
                let err = (dot(x, y) - want[i * nd + j]).abs() / mag;
                worst = worst.max(err);
            }
        }
        // 1e-12 relative to Σ|terms| is ~5000 ε(f64): a wrong sign or a
        // missing block moves the score by O(1) of Σ|terms|.
        if worst > 1e-12 {
            return Err(format!("{rep:?}: a·b differs from search::scores by {worst:e}").into());
        }
        println!(
            "check: {rep:?} ({len} numbers) a·b = search::scores(Eq10) on {nq}×{nd} pairs \
             (max error {worst:.1e} of Σ|a_i b_i|)"
        );
    }
    Ok(())
}

/// One row of the result table.
struct Row {
    method: String,
    dims: usize,
    ef: String,
    recall: f64,
    qps: f64,
    build_s: Option<f64>,
    vec_bytes: usize,
    index_bytes: Option<usize>,
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| method | dims | ef | recall@10 | queries/s (1 thread) | build s | vector B/doc | index B/doc |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let build = r.build_s.map_or("–".into(), |s| format!("{s:.1}"));
        let index = r.index_bytes.map_or("–".into(), |b| b.to_string());
        let qps = if r.qps > 0.0 {
            format!("{:.0}", r.qps)
        } else {
            "–".into()
        };
        println!(
            "| {} | {} | {} | {:.4} | {} | {} | {} | {} |",
            r.method, r.dims, r.ef, r.recall, qps, build, r.vec_bytes, index
        );
    }
}

/// Runs `search` on every query (after a warm-up pass over up to 20 queries),
/// returning the hits and the single-thread queries per second.
fn timed(
    nq: usize,
    mut search: impl FnMut(usize) -> Res<Vec<usize>>,
) -> Res<(Vec<Vec<usize>>, f64)> {
    for i in 0..nq.min(20) {
        search(i)?;
    }
    let t = Instant::now();
    let found = (0..nq).map(&mut search).collect::<Res<Vec<_>>>()?;
    Ok((found, nq as f64 / t.elapsed().as_secs_f64()))
}

/// The exact top-10 by KL in `f64` (ground truth) and the crate's own exact
/// scans (f64 and f32, one thread) as rows; also checks Eq. 10 ranks alike.
fn exact(a: &Args, data: &Data, f: &F32Data, rows: &mut Vec<Row>) -> Res<Hits<f64>> {
    let (d, exec) = (a.dim, Exec::new());
    let docs = DiagGaussians::var(a.docs, d, &data.doc_mean, &data.doc_var)?;
    let queries = DiagGaussians::var(a.queries, d, &data.q_mean, &data.q_var)?;
    let index = DocIndex::new(&docs)?;
    let t = Instant::now();
    let truth = search::top_k(&index, &queries, 10, Metric::Kl, &exec)?;
    let qps = a.queries as f64 / t.elapsed().as_secs_f64();
    let by_eq10 = search::top_k(&index, &queries, 10, Metric::Eq10, &exec)?;
    let same = (0..a.queries)
        .filter(|&i| truth.row(i).0 == by_eq10.row(i).0)
        .count();
    println!(
        "check: top-10 by Eq. 10 = top-10 by KL, in order, for {same}/{} queries",
        a.queries
    );
    drop(index);
    let len = Rep::Compact.len(d);
    let all: Vec<Vec<usize>> = (0..a.queries).map(|i| truth.row(i).0.to_vec()).collect();
    rows.push(Row {
        method: format!(
            "exact: search::top_k f64, {}-query batch (the truth)",
            a.queries
        ),
        dims: len,
        ef: "–".into(),
        recall: recall(&truth, &all),
        qps,
        build_s: None,
        vec_bytes: len * 8,
        index_bytes: None,
    });
    let index32 = DocIndex::new(&f.docs()?)?;
    let t = Instant::now();
    let hits = search::top_k(&index32, &f.queries()?, 10, Metric::Kl, &exec)?;
    let qps = a.queries as f64 / t.elapsed().as_secs_f64();
    let found: Vec<Vec<usize>> = (0..a.queries).map(|i| hits.row(i).0.to_vec()).collect();
    rows.push(Row {
        method: format!("exact: search::top_k f32, {}-query batch", a.queries),
        dims: len,
        ef: "–".into(),
        recall: recall(&truth, &found),
        qps,
        build_s: None,
        vec_bytes: len * 4,
        index_bytes: None,
    });
    // One query per call, as the ANN index is queried below.
    let (found, qps) = timed(a.queries, |i| {
        let q = DiagGaussians::var(
            1,
            d,
            &f.q_mean[i * d..(i + 1) * d],
            &f.q_var[i * d..(i + 1) * d],
        )?;
        Ok(search::top_k(&index32, &q, 10, Metric::Kl, &exec)?.index)
    })?;
    rows.push(Row {
        method: "exact: search::top_k f32, one query per call".into(),
        dims: len,
        ef: "–".into(),
        recall: recall(&truth, &found),
        qps,
        build_s: None,
        vec_bytes: len * 4,
        index_bytes: None,
    });
    rows.push(cosine_row(a, f, &index32, &truth)?);
    Ok(truth)
}

/// What a cosine metric would return on the compact vectors: the exact
/// top-10 by `a·b / ‖b‖` (`‖a‖` is the same for every document of a query),
/// from the crate's Eq. 10 scores, 64 queries at a time.
fn cosine_row(a: &Args, f: &F32Data, index32: &DocIndex<f32>, truth: &Hits<f64>) -> Res<Row> {
    let (d, n) = (a.dim, a.docs);
    let len = Rep::Compact.len(d);
    let mut dv = vec![0.0f32; n * len];
    diag::doc_vectors(Rep::Compact, &f.docs()?, &mut dv)?;
    let norm: Vec<f32> = dv
        .chunks_exact(len)
        .map(|b| b.iter().map(|x| x * x).sum::<f32>().sqrt())
        .collect();
    let mut found = Vec::with_capacity(a.queries);
    let mut out = vec![0.0f32; 64 * n];
    for start in (0..a.queries).step_by(64) {
        let m = 64.min(a.queries - start);
        let q = DiagGaussians::var(
            m,
            d,
            &f.q_mean[start * d..(start + m) * d],
            &f.q_var[start * d..(start + m) * d],
        )?;
        search::scores(index32, &q, Metric::Eq10, &mut out[..m * n], &Exec::new())?;
        for row in out[..m * n].chunks_exact(n) {
            let mut ids: Vec<usize> = (0..n).collect();
            let key = |j: usize| row[j] / norm[j];
            ids.select_nth_unstable_by(9, |&x, &y| key(y).total_cmp(&key(x)));
            ids.truncate(10);
            found.push(ids);
        }
    }
    Ok(Row {
        method: "exact, cosine on the compact vectors (WRONG metric)".into(),
        dims: len,
        ef: "–".into(),
        recall: recall(truth, &found),
        qps: 0.0, // not timed: a correctness row
        build_s: None,
        vec_bytes: len * 4,
        index_bytes: None,
    })
}

fn main() -> Res<()> {
    let a = parse_args()?;
    println!(
        "ANN retrieval by KL: {} documents ({}), {} queries, d = {}, usearch {}{} (HNSW, MetricKind::IP, f32; \
         connectivity {}, ef_add {}, build on {} thread(s), queries on 1)",
        a.docs,
        if a.clusters == 0 {
            "i.i.d. means".to_string()
        } else {
            format!("means in {} clusters", a.clusters)
        },
        a.queries,
        a.dim,
        usearch::version(),
        if cfg!(feature = "numkong") {
            " with numkong"
        } else {
            " without numkong (portable distances)"
        },
        a.connectivity,
        a.ef_add,
        a.threads
    );
    println!(
        "note: the query and document vectors are NOT normalized and must not be: rank by the raw \
         inner product (IP / dot), never cosine, which ranks wrongly (see the cosine row)."
    );
    let t = Instant::now();
    let data = generate(&a);
    println!("generated in {:.1} s", t.elapsed().as_secs_f64());
    check_eq10(&a, &data)?;
    let f = F32Data::new(&a, &data);
    let mut rows = Vec::new();
    let t = Instant::now();
    let truth = exact(&a, &data, &f, &mut rows)?;
    println!("exact scans in {:.1} s", t.elapsed().as_secs_f64());
    drop(data);
    for rep in [Rep::Compact, Rep::Wide] {
        ann(&a, &f, rep, &truth, &mut rows)?;
    }
    print_table(&rows);
    Ok(())
}

/// Builds the usearch IP index over `rep`'s document vectors (keys = document
/// indices) on `a.threads` threads.
fn build_index(a: &Args, len: usize, dv: &[f32]) -> Res<(Index, f64)> {
    let opts = IndexOptions {
        dimensions: len,
        metric: MetricKind::IP,
        quantization: ScalarKind::F32,
        connectivity: a.connectivity,
        expansion_add: a.ef_add,
        expansion_search: 64,
        multi: false,
    };
    let index = Index::new(&opts)?;
    index.reserve_capacity_and_threads(a.docs, a.threads)?;
    let t = Instant::now();
    let errors: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..a.threads)
            .map(|w| {
                let index = &index;
                s.spawn(move || -> Result<(), String> {
                    for j in (w..a.docs).step_by(a.threads) {
                        index
                            .add(j as u64, &dv[j * len..(j + 1) * len])
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a build thread panicked".into()),
            })
            .collect()
    });
    if let Some(e) = errors.first() {
        return Err(e.clone().into());
    }
    Ok((index, t.elapsed().as_secs_f64()))
}

/// The MIPS-to-nearest-neighbour reduction: appends `√(M² − ‖b‖²)` to each
/// document vector (`M` the largest norm), so every document has norm `M`;
/// the query gets a `0` there, so `a · b` is unchanged. Returns the new length.
fn augment(len: usize, dv: &[f32]) -> (usize, Vec<f32>) {
    let norm2: Vec<f64> = dv
        .chunks_exact(len)
        .map(|b| b.iter().map(|&x| f64::from(x) * f64::from(x)).sum())
        .collect();
    let max = norm2.iter().copied().fold(0.0, f64::max);
    let mut out = Vec::with_capacity(norm2.len() * (len + 1));
    for (b, n2) in dv.chunks_exact(len).zip(&norm2) {
        out.extend_from_slice(b);
        out.push((max - n2).max(0.0).sqrt() as f32);
    }
    (len + 1, out)
}

/// Pads each query vector with a trailing `0` (the partner of [`augment`]).
fn pad(len: usize, qv: &[f32]) -> Vec<f32> {
    qv.chunks_exact(len)
        .flat_map(|a| a.iter().copied().chain([0.0]))
        .collect()
}

/// Builds the usearch IP index over `rep`'s document vectors and measures it:
/// its brute-force `exact_search` (the IP metric ranks as KL does), the HNSW
/// graph on the raw vectors (degenerate: see `docs/retrieval.md`) at the
/// largest `ef`, and the HNSW graph on the vectors with the norm coordinate
/// ([`augment`]) at each `ef`.
fn ann(a: &Args, f: &F32Data, rep: Rep, truth: &Hits<f64>, rows: &mut Vec<Row>) -> Res<()> {
    let len = rep.len(a.dim);
    let mut dv = vec![0.0f32; a.docs * len];
    diag::doc_vectors(rep, &f.docs()?, &mut dv)?;
    let mut qv = vec![0.0f32; a.queries * len];
    diag::query_vectors(rep, &f.queries()?, &mut qv)?;
    let name = if rep == Rep::Compact {
        "compact 2d+1"
    } else {
        "wide 3d+1"
    };
    let keys = |m: usearch::ffi::Matches| m.keys.iter().map(|&k| k as usize).collect();
    // Raw vectors: exact search, then the HNSW graph at the widest ef only.
    let (index, build_s) = build_index(a, len, &dv)?;
    report_index(&format!("{name}, raw"), &index, build_s, a.docs);
    let query = |i: usize| &qv[i * len..(i + 1) * len];
    let (found, qps) = timed(a.queries, |i| Ok(keys(index.exact_search(query(i), 10)?)))?;
    rows.push(Row {
        method: format!("usearch exact_search IP, {name}"),
        dims: len,
        ef: "–".into(),
        recall: recall(truth, &found),
        qps,
        build_s: None,
        vec_bytes: len * 4,
        index_bytes: None,
    });
    let ef = a.ef.iter().copied().max().unwrap_or(64);
    index.change_expansion_search(ef);
    let (found, qps) = timed(a.queries, |i| Ok(keys(index.search(query(i), 10)?)))?;
    rows.push(Row {
        method: format!("usearch HNSW IP, {name}, raw (degenerate graph)"),
        dims: len,
        ef: ef.to_string(),
        recall: recall(truth, &found),
        qps,
        build_s: Some(build_s),
        vec_bytes: len * 4,
        index_bytes: Some(index.memory_usage() / a.docs),
    });
    drop(index);
    // With the norm coordinate: a proper graph.
    let (alen, adv) = augment(len, &dv);
    drop(dv);
    let aqv = pad(len, &qv);
    let (index, build_s) = build_index(a, alen, &adv)?;
    drop(adv); // the index holds its own copy
    report_index(
        &format!("{name} + norm coordinate"),
        &index,
        build_s,
        a.docs,
    );
    let mem = index.memory_usage();
    let query = |i: usize| &aqv[i * alen..(i + 1) * alen];
    for &ef in &a.ef {
        index.change_expansion_search(ef);
        let (found, qps) = timed(a.queries, |i| Ok(keys(index.search(query(i), 10)?)))?;
        rows.push(Row {
            method: format!("usearch HNSW IP, {name} + norm coordinate"),
            dims: alen,
            ef: ef.to_string(),
            recall: recall(truth, &found),
            qps,
            build_s: Some(build_s),
            vec_bytes: alen * 4,
            index_bytes: Some(mem / a.docs),
        });
    }
    Ok(())
}

/// Prints the build time, edges and memory of an index.
fn report_index(what: &str, index: &Index, build_s: f64, n: usize) {
    let (mem, st, ms) = (index.memory_usage(), index.stats(), index.memory_stats());
    println!(
        "{what}: {} numbers per vector, built in {build_s:.1} s; {} edges ({:.1} per document); \
         usearch memory_usage {:.0} B/doc (graph {:.0}, vectors {:.0} allocated)",
        index.dimensions(),
        st.edges,
        st.edges as f64 / n as f64,
        mem as f64 / n as f64,
        ms.graph_allocated as f64 / n as f64,
        ms.vectors_allocated as f64 / n as f64,
    );
}
