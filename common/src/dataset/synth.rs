//! A synthetic SL-Animals-DVS: the real 59 recording names, 19 gestures each in
//! class order, tag CSVs and real jAER AEDAT 2.0 files (DVS128, 128 × 128).
//!
//! Each class is a distinct, learnable motion: a disk of a class-specific radius
//! that starts near the sensor's centre and swings out along a class-specific
//! direction (`2π·c/19`) at a class-specific frequency, with a class-specific
//! sideways wobble. Events fire on the disk's edge: ON on the leading edge, OFF
//! on the trailing one. People vary the offset, scale, speed, event rate and
//! noise; the set (S1-S4, from the name's suffix) scales rate and noise.
//! Everything is drawn from a ChaCha8 stream seeded by `(seed, recording index)`,
//! so the output is deterministic for a seed.

use std::f64::consts::PI;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::sl_animals::{CLASS_DEFS, CLASS_NAMES, FILE_LIST};
use crate::events::Event;
use crate::events::aedat::v2;
use crate::events::tags::{self, CLASSES};

/// How big the generated data set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SynthSize {
    /// For CI: gestures of 0.3-0.6 s with a few hundred to ~1500 events each.
    Tiny,
    /// Gestures of 1-2 s, a few thousand events each.
    Small,
    /// Realistic: gestures of 1-9 s at DVS128-like rates (tens of events per ms).
    Full,
}

impl std::str::FromStr for SynthSize {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tiny" => Ok(SynthSize::Tiny),
            "small" => Ok(SynthSize::Small),
            "full" => Ok(SynthSize::Full),
            other => Err(SynthError::BadSize {
                given: other.to_string(),
            }),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthOptions {
    /// Seed of everything random.
    pub seed: u64,
    /// Gesture lengths and event rates.
    pub size: SynthSize,
    /// Write only N recordings, spread evenly over the file list so every
    /// recording set is represented (all 59 when `None`).
    pub recordings: Option<usize>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// Recordings written (in file-list order).
    pub recordings: Vec<String>,
    /// Samples (19 per recording).
    pub samples: usize,
    /// Events over all recordings.
    pub events: u64,
    /// Bytes of the recording files.
    pub bytes: u64,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// An unknown `--size`.
    #[error("unknown size {given:?} (expected tiny, small or full)")]
    BadSize {
        /// What was given.
        given: String,
    },
    /// `--recordings 0` or more than exist.
    #[error("cannot write {given} recordings (1..={max})")]
    BadCount {
        /// What was given.
        given: usize,
        /// The number of recordings in the file list.
        max: usize,
    },
}

/// The 59 recording names of SL-Animals-DVS in file-list order: user00-user17
/// `_indoor` (no user04), user18-24 `_sunlight`, user25-34 `_imse`, user35-59 `_dc`.
pub fn recording_names() -> Vec<String> {
    (0..60)
        .filter(|&u| u != 4)
        .map(|u| {
            let set = match u {
                0..=17 => "indoor",
                18..=24 => "sunlight",
                25..=34 => "imse",
                _ => "dc",
            };
            format!("user{u:02}_{set}")
        })
        .collect()
}

/// The class definitions CSV as the real data set ships it.
pub fn class_definitions_csv() -> String {
    let mut s = String::from("class,class Def\n");
    for (i, n) in CLASS_NAMES.iter().enumerate() {
        s.push_str(&format!("{},{n}\n", i + 1));
    }
    s
}

/// Per-size ranges: gesture duration (s), events per ms of motion, noise per ms.
struct SizeParams {
    duration: (f64, f64),
    rate: (f64, f64),
    noise: (f64, f64),
    gap_ms: (f64, f64),
}

fn size_params(size: SynthSize) -> SizeParams {
    match size {
        SynthSize::Tiny => SizeParams {
            duration: (0.3, 0.6),
            rate: (1.2, 2.2),
            noise: (0.05, 0.2),
            gap_ms: (20.0, 60.0),
        },
        SynthSize::Small => SizeParams {
            duration: (1.0, 2.0),
            rate: (2.0, 4.0),
            noise: (0.1, 0.4),
            gap_ms: (50.0, 200.0),
        },
        SynthSize::Full => SizeParams {
            duration: (1.0, 9.0),
            rate: (15.0, 40.0),
            noise: (1.0, 4.0),
            gap_ms: (200.0, 1500.0),
        },
    }
}

/// A person's variation of the class motions.
struct Person {
    offset: (f64, f64),
    scale: f64,
    speed: f64,
    rate: f64,
    noise: f64,
}

/// The set's (S1-S4) effect on rate and noise.
fn set_factors(name: &str) -> (f64, f64) {
    if name.ends_with("_indoor") {
        (1.0, 1.5) // S3: neon flicker, more noise
    } else if name.ends_with("_sunlight") {
        (1.4, 2.0) // S4: strong light, many events
    } else if name.ends_with("_imse") {
        (0.8, 0.7) // S1
    } else {
        (1.1, 1.0) // S2
    }
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// The position of class `c`'s disk at time `s` seconds into the gesture.
fn position(c: usize, s: f64, p: &Person) -> (f64, f64) {
    let theta = 2.0 * PI * c as f64 / CLASSES as f64;
    let freq = (0.8 + 0.25 * (c % 5) as f64) * p.speed;
    let along = 38.0 * p.scale * (2.0 * PI * freq * s).sin();
    let wobble = 4.0 * (c % 3) as f64 * p.scale * (4.0 * PI * freq * s + c as f64).sin();
    (
        64.0 + p.offset.0 + along * theta.cos() - wobble * theta.sin(),
        64.0 + p.offset.1 + along * theta.sin() + wobble * theta.cos(),
    )
}

fn radius(c: usize, p: &Person) -> f64 {
    (4.0 + 2.0 * (c % 4) as f64) * p.scale
}

/// Appends one gesture's events, starting at `t0` µs; returns the end time.
fn gesture(
    rng: &mut ChaCha8Rng,
    c: usize,
    t0: i64,
    duration_ms: i64,
    person: &Person,
    out: &mut Vec<Event>,
) -> i64 {
    let r = radius(c, person);
    let mut batch: Vec<Event> = Vec::new();
    for ms in 0..duration_ms {
        let s = ms as f64 / 1000.0;
        let (x0, y0) = position(c, s, person);
        let (x1, y1) = position(c, s + 0.001, person);
        let (vx, vy) = (x1 - x0, y1 - y0);
        let speed = (vx * vx + vy * vy).sqrt();
        // More events when the disk moves fast; a few from a still disk.
        let expected = person.rate * (0.3 + 2.0 * speed.min(1.5));
        let n = (expected + rng.random::<f64>()).floor() as usize;
        batch.clear();
        for _ in 0..n {
            let phi = 2.0 * PI * rng.random::<f64>();
            let (nx, ny) = (phi.cos(), phi.sin());
            let x = x0 + r * nx + rng.random::<f64>() - 0.5;
            let y = y0 + r * ny + rng.random::<f64>() - 0.5;
            if !(0.0..128.0).contains(&x) || !(0.0..128.0).contains(&y) {
                continue;
            }
            batch.push(Event {
                t: t0 + ms * 1000 + rng.random_range(0..1000),
                x: x as u16,
                y: y as u16,
                p: nx * vx + ny * vy >= 0.0,
            });
        }
        noise(rng, person.noise, t0 + ms * 1000, &mut batch);
        batch.sort_by_key(|e| e.t);
        out.extend_from_slice(&batch);
    }
    t0 + duration_ms * 1000
}

/// Background events for one millisecond starting at `t`.
fn noise(rng: &mut ChaCha8Rng, rate: f64, t: i64, out: &mut Vec<Event>) {
    let n = (rate + rng.random::<f64>()).floor() as usize;
    for _ in 0..n {
        out.push(Event {
            t: t + rng.random_range(0..1000),
            x: rng.random_range(0..128),
            y: rng.random_range(0..128),
            p: rng.random(),
        });
    }
}

/// One recording's events and its 19 `(start, end)` tag ranges.
pub fn recording(
    seed: u64,
    index: usize,
    name: &str,
    size: SynthSize,
) -> (Vec<Event>, Vec<(usize, usize)>) {
    let order: Vec<usize> = (0..CLASSES).collect();
    recording_in_order(seed, index, name, size, &order)
}

/// A recording of the gestures `order` names, in that order (the same
/// person and draws as [`recording`] when `order` is `0..19`);
/// returns the events and each gesture's event range, in `order`.
pub fn recording_in_order(
    seed: u64,
    index: usize,
    name: &str,
    size: SynthSize,
    order: &[usize],
) -> (Vec<Event>, Vec<(usize, usize)>) {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64);
    let sp = size_params(size);
    let (rate_f, noise_f) = set_factors(name);
    let person = Person {
        offset: (
            uniform(&mut rng, (-8.0, 8.0)),
            uniform(&mut rng, (-8.0, 8.0)),
        ),
        scale: uniform(&mut rng, (0.8, 1.2)),
        speed: uniform(&mut rng, (0.85, 1.15)),
        rate: uniform(&mut rng, sp.rate) * rate_f,
        noise: uniform(&mut rng, sp.noise) * noise_f,
    };
    let mut events = Vec::new();
    let mut ranges = Vec::with_capacity(order.len());
    let mut t = rng.random_range(1_000_000..20_000_000i64);
    for &c in order {
        let gap = uniform(&mut rng, sp.gap_ms) as i64;
        let mut batch = Vec::new();
        for ms in 0..gap {
            noise(&mut rng, person.noise, t + ms * 1000, &mut batch);
        }
        batch.sort_by_key(|e| e.t);
        events.extend_from_slice(&batch);
        t += gap * 1000;
        let duration_ms = (uniform(&mut rng, sp.duration) * 1000.0) as i64;
        let start = events.len();
        t = gesture(&mut rng, c, t, duration_ms, &person, &mut events);
        ranges.push((start, events.len()));
    }
    (events, ranges)
}

/// Writes `bytes` to `path`.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    std::fs::write(path, bytes).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes an event file at `path` through a buffer with `write`; returns
/// its size in bytes.
pub(crate) fn write_events(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<u64, SynthError> {
    let io = |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).map_err(io)?);
    write(&mut w).map_err(io)?;
    w.flush().map_err(io)?;
    Ok(std::fs::metadata(path).map_err(io)?.len())
}

fn header_lines(seed: u64, name: &str) -> Vec<String> {
    vec![
        "This is a raw AE data file - do not edit".into(),
        "Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event"
            .into(),
        "Timestamps tick is 1 us".into(),
        format!(
            "created by spikecv synth (seed {seed}, recording {name}); synthetic, not a real recording"
        ),
        "HardwareInterface: DVS128 (synthetic)".into(),
        "AEChip: ch.unizh.ini.jaer.chip.retina.DVS128".into(),
    ]
}

/// Events and bytes written for one recording, or why not.
type Written = Result<(u64, u64), SynthError>;

/// Writes one recording and its tags; returns (events, bytes).
fn write_recording(out: &Path, seed: u64, index: usize, name: &str, size: SynthSize) -> Written {
    let (events, ranges) = recording(seed, index, name, size);
    let path = out.join("recordings").join(format!("{name}.aedat"));
    let bytes = write_events(&path, |w| v2::write(w, &header_lines(seed, name), &events))?;
    write_file(
        &out.join("tags").join(format!("{name}.csv")),
        tags::to_csv(&ranges).as_bytes(),
    )?;
    Ok((events.len() as u64, bytes))
}

/// How many of `max` recordings `opts.recordings` asks for (all when unset);
/// none, or more than there are, is an error.
pub(crate) fn recording_count(opts: &SynthOptions, max: usize) -> Result<usize, SynthError> {
    let n = opts.recordings.unwrap_or(max);
    if n == 0 || n > max {
        return Err(SynthError::BadCount { given: n, max });
    }
    Ok(n)
}

/// Generates a data set root in `out` (created if missing): `recordings/`,
/// `tags/`, `filelist.txt` and the class definitions. Recordings are generated
/// in parallel; the output depends only on the options.
pub fn generate(out: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
    let all = recording_names();
    let n = recording_count(opts, all.len())?;
    // Evenly spaced positions keep indoor and outdoor sets in a small data set
    // (the reduced variant needs the latter); a recording's content depends on
    // its position in the full list, not on N.
    let picked: Vec<usize> = (0..n).map(|i| i * all.len() / n).collect();
    let names: Vec<String> = picked.iter().map(|&i| all[i].clone()).collect();
    for dir in ["recordings", "tags"] {
        let d = out.join(dir);
        std::fs::create_dir_all(&d).map_err(|source| SynthError::Io { path: d, source })?;
    }
    // One thread per run of recordings; joined in order, so the results are
    // in file-list order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = names.len().div_ceil(threads);
    let results: Vec<Written> = std::thread::scope(|scope| {
        let handles: Vec<_> = picked
            .chunks(run)
            .zip(names.chunks(run))
            .map(|(picked, names)| {
                let write = |(&i, name): (&usize, &String)| {
                    write_recording(out, opts.seed, i, name, opts.size)
                };
                scope.spawn(move || picked.iter().zip(names).map(write).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let (mut events, mut bytes) = (0, 0);
    for r in results {
        let (e, b) = r?;
        events += e;
        bytes += b;
    }
    let mut list = names.join("\n");
    list.push('\n');
    write_file(&out.join(FILE_LIST), list.as_bytes())?;
    write_file(&out.join(CLASS_DEFS), class_definitions_csv().as_bytes())?;
    Ok(SynthSummary {
        samples: names.len() * CLASSES,
        recordings: names,
        events,
        bytes,
    })
}
