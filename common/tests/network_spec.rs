//! `[network]`: the default network is the reference, shapes, refusals naming
//! the block, compact names, counts, `network.*` sweeps, unchanged job ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::configurations;
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::network::{
    Block, BlockKind, InputShape, LayerOp, LifSettings, NetworkSpec, PoolKind, Problem, Shape,
};
use spikecv_common::experiment::plan::plan;

/// The issue's example network.
const EXAMPLE: &str = r#"[network]
blocks = [
  { conv = 8, kernel = 5, stride = 2 },
  { pool = "max", size = 2 },
  { conv = 16, kernel = 3, padding = 1 },
  { pool = "avg", size = 2 },
  { flatten = true },
  { linear = 64 },
  { linear = 19 },
]
"#;

fn load(extra: &str) -> Result<ExperimentConfig, ConfigError> {
    ExperimentConfig::from_toml_str(&format!("[data]\nroot = \"d\"\n{extra}"))
}

fn with_blocks(blocks: &str) -> Result<ExperimentConfig, ConfigError> {
    load(&format!("[network]\nblocks = [{blocks}]\n"))
}

fn image(channels: u64, x: u64, y: u64) -> Shape {
    Shape::Image { channels, x, y }
}

#[test]
fn no_network_is_the_reference_with_its_names() {
    let c = load("").unwrap();
    assert!(c.network.is_none());
    let spec = c.network_spec(19);
    assert_eq!(spec, NetworkSpec::reference(19));
    assert!(spec.is_reference());
    assert_eq!(
        spec.param_names(),
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias"
        ]
    );
    assert_eq!(spec.lif_layer_names(), ["conv1", "conv2", "fc1", "fc2"]);
    assert_eq!(spec.compact_name(), "c20k3-p2a-c50k3-p2a-f200-f19");

    let net = c.network(19).unwrap();
    // 128 -conv3-> 126 -pool2-> 63 -conv3-> 61 -pool2-> 30: 50 * 30 * 30.
    assert_eq!(net.flat_features(), Some(45_000));
    assert_eq!(
        net.shapes(),
        [
            (image(2, 128, 128), image(20, 126, 126)),
            (image(20, 126, 126), image(20, 63, 63)),
            (image(20, 63, 63), image(50, 61, 61)),
            (image(50, 61, 61), image(50, 30, 30)),
            (image(50, 30, 30), Shape::Flat { features: 45_000 }),
            (
                Shape::Flat { features: 45_000 },
                Shape::Flat { features: 200 }
            ),
            (Shape::Flat { features: 200 }, Shape::Flat { features: 19 }),
        ]
    );
    // conv1 20*2*9+20 = 380; conv2 50*20*9+50 = 9050; fc1 200*45000+200 =
    // 9_000_200; fc2 19*200+19 = 3819; sum 9_013_449.
    assert_eq!(net.param_count(), 9_013_449);
    // MACs per step: conv1 20*126*126 * 2*9 = 5_715_360; conv2 50*61*61 *
    // 20*9 = 33_489_000; fc1 45000*200 = 9_000_000; fc2 200*19 = 3800; sum
    // 48_208_160, x2 = 96_416_320 FLOPs per step, x50 steps.
    assert_eq!(net.flops_per_sample(1), 96_416_320);
    assert_eq!(net.flops_per_sample(50), 4_820_816_000);
    let names: Vec<&str> = net.lif_layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv1", "conv2", "fc1", "fc2"]);
    let fc1 = &net.layers[5];
    assert_eq!(fc1.weight_name().as_deref(), Some("fc1.weight"));
    assert_eq!(fc1.weight_dims(), Some(vec![200, 45_000]));
    assert_eq!(net.layers[0].weight_dims(), Some(vec![20, 2, 3, 3]));
    assert_eq!(net.layers[0].bias_dims(), Some(vec![20]));
    assert_eq!(
        net.layers[0].lif,
        Some(LifSettings {
            tau: 0.3,
            vth: 0.3,
            a: 0.5
        })
    );

    // Downscale 4: 32 -> 30 -> 15 -> 13 -> 6: 50 * 6 * 6 = 1800 features;
    // fc1 200*1800+200 = 360_200, total 380+9050+360_200+3819 = 373_449.
    let c4 = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\ndownscale = 4\n").unwrap();
    let net4 = c4.network(19).unwrap();
    assert_eq!(net4.input, InputShape::dvs128(4));
    assert_eq!(net4.flat_features(), Some(1800));
    assert_eq!(net4.param_count(), 373_449);
    // Downscale 8: 16 -> 14 -> 7 -> 5 -> 2: 50 * 2 * 2 = 200.
    let c8 = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\ndownscale = 8\n").unwrap();
    assert_eq!(c8.network(19).unwrap().flat_features(), Some(200));
    // Another data set's class count.
    let net11 = c.network(11).unwrap();
    assert_eq!(net11.output(), Shape::Flat { features: 11 });
    assert_eq!(net11.compact_name(), "c20k3-p2a-c50k3-p2a-f200-f11");
}

#[test]
fn the_issue_example_has_its_shapes_names_and_counts() {
    let c = load(EXAMPLE).unwrap();
    let spec = c.network.clone().unwrap();
    assert!(!spec.is_reference());
    assert_eq!(spec.blocks[1], Block::pool(PoolKind::Max, 2));
    assert_eq!(
        spec.blocks[0].kind,
        BlockKind::Conv {
            channels: 8,
            kernel: 5,
            stride: 2,
            padding: 0
        }
    );
    assert_eq!(spec.compact_name(), "c8k5s2-p2m-c16k3p1-p2a-f64-f19");
    assert_eq!(
        spec.param_names(),
        [
            "blocks.0.weight",
            "blocks.0.bias",
            "blocks.2.weight",
            "blocks.2.bias",
            "blocks.5.weight",
            "blocks.5.bias",
            "blocks.6.weight",
            "blocks.6.bias"
        ]
    );
    assert_eq!(
        spec.lif_layer_names(),
        ["blocks.0", "blocks.2", "blocks.5", "blocks.6"]
    );
    let net = c.network(19).unwrap();
    // 128 -conv5 s2-> (128-5)/2+1 = 62 -max2-> 31 -conv3 p1-> 31 -avg2-> 15.
    assert_eq!(
        net.shapes()[..4],
        [
            (image(2, 128, 128), image(8, 62, 62)),
            (image(8, 62, 62), image(8, 31, 31)),
            (image(8, 31, 31), image(16, 31, 31)),
            (image(16, 31, 31), image(16, 15, 15)),
        ]
    );
    assert_eq!(net.flat_features(), Some(3600));
    // 8*2*25+8 = 408; 16*8*9+16 = 1168; 64*3600+64 = 230_464; 19*64+19 =
    // 1235; sum 233_275.
    assert_eq!(net.param_count(), 233_275);
    // MACs: 8*62*62*2*25 = 1_537_600; 16*31*31*8*9 = 1_107_072; 3600*64 =
    // 230_400; 64*19 = 1216; sum 2_876_288, x2 = 5_752_576 per step.
    assert_eq!(net.flops_per_sample(4), 4 * 5_752_576);
    assert_eq!(
        net.layers[2].op,
        LayerOp::Conv {
            in_channels: 8,
            out_channels: 16,
            kernel: 3,
            stride: 1,
            padding: 1
        }
    );
    // At downscale 2: 64 -> 30 -> 15 -> 15 -> 7: 16*49 = 784 features.
    let mut c2 = c.clone();
    c2.data.downscale = 2;
    assert_eq!(c2.network(19).unwrap().flat_features(), Some(784));
}

#[test]
fn lif_off_and_own_neuron_values() {
    let c = with_blocks(
        "{ conv = 4, kernel = 3, lif = false }, { flatten = true }, \
         { linear = 32, tau = 0.5, vth = 0.2 }, { linear = 19, a = 1.0 }",
    )
    .unwrap();
    let spec = c.network.clone().unwrap();
    assert_eq!(spec.compact_name(), "c4k3n-f32t0.5v0.2-f19a1");
    assert_eq!(spec.lif_layer_names(), ["blocks.2", "blocks.3"]);
    let net = c.network(19).unwrap();
    assert_eq!(net.layers[0].lif, None);
    let lif = |i: usize| net.layers[i].lif.unwrap();
    assert_eq!((lif(2).tau, lif(2).vth, lif(2).a), (0.5, 0.2, 0.5));
    assert_eq!((lif(3).tau, lif(3).vth, lif(3).a), (0.3, 0.3, 1.0));
    // 4*2*9+4 = 76; 126*126*4 = 63_504 features; 32*63_504+32 = 2_032_160;
    // 19*32+19 = 627; sum 2_032_863.
    assert_eq!(net.param_count(), 2_032_863);
    // The written form leaves defaults out and reads back the same.
    let text = c.to_toml_string();
    assert!(!text.contains("stride"), "{text}");
    assert_eq!(ExperimentConfig::from_toml_str(&text).unwrap(), c);
}

#[test]
fn a_config_without_network_writes_none() {
    let c = load("").unwrap();
    assert!(!c.to_toml_string().contains("network"));
    let c = load(EXAMPLE).unwrap();
    let back = ExperimentConfig::from_toml_str(&c.to_toml_string()).unwrap();
    assert_eq!(back, c);
    assert_eq!(
        back.network.unwrap().compact_name(),
        "c8k5s2-p2m-c16k3p1-p2a-f64-f19"
    );
}

/// Refusals at load: `(blocks, key named, problem)`.
#[test]
fn impossible_networks_are_refused_naming_the_block_and_reason() {
    let tail = "{ flatten = true }, { linear = 19 }";
    let cases: Vec<(String, &str, Problem)> = vec![
        (
            // 128 -max 64-> 2 -avg 2-> 1: the third pool does not fit.
            format!(
                "{{ pool = \"max\", size = 64 }}, {{ pool = \"avg\", size = 2 }}, \
                 {{ pool = \"avg\", size = 2 }}, {tail}"
            ),
            "network.blocks[2]",
            Problem::PoolTooLarge {
                kind: PoolKind::Avg,
                size: 2,
                x: 1,
                y: 1,
            },
        ),
        (
            format!("{{ pool = \"avg\", size = 32 }}, {{ conv = 4, kernel = 5 }}, {tail}"),
            "network.blocks[1]",
            Problem::KernelTooLarge {
                kernel: 5,
                x: 4,
                y: 4,
            },
        ),
        (
            "{ flatten = true }, { conv = 4, kernel = 3 }, { linear = 19 }".to_owned(),
            "network.blocks[1]",
            Problem::SpatialAfterFlatten { kind: "conv" },
        ),
        (
            "{ flatten = true }, { pool = \"max\", size = 2 }, { linear = 19 }".to_owned(),
            "network.blocks[1]",
            Problem::SpatialAfterFlatten { kind: "pool" },
        ),
        (
            "{ conv = 4, kernel = 3 }, { linear = 19 }".to_owned(),
            "network.blocks[1]",
            Problem::LinearBeforeFlatten,
        ),
        (
            "{ conv = 4, kernel = 3 }".to_owned(),
            "network.blocks[0]",
            Problem::NoFlatten,
        ),
        (
            "{ conv = 4, kernel = 3 }, { flatten = true }, { linear = 10 }".to_owned(),
            "network.blocks[2]",
            Problem::WrongClassCount {
                width: 10,
                classes: 19,
            },
        ),
        (
            "{ pool = \"avg\", size = 16 }, { flatten = true }".to_owned(),
            "network.blocks[1]",
            Problem::LastNotLinear { classes: 19 },
        ),
        (
            format!("{{ conv = 0, kernel = 3 }}, {tail}"),
            "network.blocks[0]",
            Problem::Zero { key: "conv" },
        ),
        (
            format!("{{ pool = \"max\", size = 0 }}, {tail}"),
            "network.blocks[0]",
            Problem::Zero { key: "size" },
        ),
        (
            "{ flatten = true }, { linear = 0 }, { linear = 19 }".to_owned(),
            "network.blocks[1]",
            Problem::Zero { key: "linear" },
        ),
        (
            format!("{{ conv = 5000, kernel = 3 }}, {tail}"),
            "network.blocks[0]",
            Problem::OverLimit {
                key: "conv",
                value: 5000,
                limit: 4096,
            },
        ),
        (
            format!("{{ conv = 4, kernel = 33 }}, {tail}"),
            "network.blocks[0]",
            Problem::OverLimit {
                key: "kernel",
                value: 33,
                limit: 31,
            },
        ),
        (
            "{ flatten = true }, { linear = 70000 }, { linear = 19 }".to_owned(),
            "network.blocks[1]",
            Problem::OverLimit {
                key: "linear",
                value: 70_000,
                limit: 65_536,
            },
        ),
        (
            format!("{{ conv = 4, kernel = 3, padding = 3 }}, {tail}"),
            "network.blocks[0]",
            Problem::PaddingTooLarge {
                padding: 3,
                kernel: 3,
            },
        ),
        (
            "{ flatten = true }, { flatten = true }, { linear = 19 }".to_owned(),
            "network.blocks[1]",
            Problem::SecondFlatten,
        ),
        (
            format!("{{ conv = 4, kernel = 3, lif = false, tau = 0.5 }}, {tail}"),
            "network.blocks[0]",
            Problem::OverrideWithoutLif { key: "tau" },
        ),
        (
            format!("{{ conv = 4, kernel = 3, tau = 1.5 }}, {tail}"),
            "network.blocks[0]",
            Problem::BadNeuron {
                key: "tau",
                value: 1.5,
                reason: "the decay must be in [0, 1]",
            },
        ),
        (
            format!("{{ conv = 4, kernel = 3, a = 0.0 }}, {tail}"),
            "network.blocks[0]",
            Problem::BadNeuron {
                key: "a",
                value: 0.0,
                reason: "the surrogate width must be > 0",
            },
        ),
        ("".to_owned(), "network.blocks", Problem::Empty),
        (
            // 2 * 128 * 128 = 32768 features x 4000 = 131 M weights.
            "{ flatten = true }, { linear = 4000 }, { linear = 19 }".to_owned(),
            "network.blocks",
            Problem::TooManyParameters {
                // 4000*32768+4000 + 19*4000+19 = 131_076_000 + 76_019.
                count: 131_152_019,
                limit: 100_000_000,
            },
        ),
        (
            std::iter::repeat_n("{ conv = 2, kernel = 1 }", 33)
                .chain([tail])
                .collect::<Vec<_>>()
                .join(", "),
            "network.blocks",
            Problem::TooManyBlocks {
                count: 35,
                limit: 32,
            },
        ),
    ];
    for (blocks, key, problem) in cases {
        let c = ExperimentConfig::from_toml_str(&format!(
            "[data]\nroot = \"d\"\n[network]\nblocks = [{blocks}]\n"
        ));
        match c {
            Err(ConfigError::Invalid { key: k, message }) => {
                assert_eq!(k, key, "{blocks}: {message}");
                assert_eq!(message, problem.to_string(), "{blocks}");
            }
            other => panic!("{blocks}: expected {key}: {problem}, got {other:?}"),
        }
        // The typed error carries the same block and problem.
        if let Ok(spec) = toml::from_str::<toml::Table>(&format!("blocks = [{blocks}]")) {
            let value = spec.get("blocks").unwrap();
            let spec = NetworkSpec::from_blocks_value(value).unwrap();
            let e = spec
                .resolve(
                    InputShape::dvs128(1),
                    19,
                    LifSettings {
                        tau: 0.3,
                        vth: 0.3,
                        a: 0.5,
                    },
                )
                .unwrap_err();
            assert_eq!((e.key().as_str(), &e.problem), (key, &problem));
        }
    }
}

/// Keys of the wrong kind, unknown keys and bad values are refused when the
/// file is read, naming the block's index.
#[test]
fn bad_keys_are_refused_naming_the_block() {
    let cases = [
        (
            "{ flatten = true }, { linear = 19, colour = 3 }",
            "network.blocks[1]",
            "colour",
        ),
        (
            "{ pool = \"max\", size = 2, kernel = 3 }",
            "network.blocks[0]",
            "kernel",
        ),
        (
            "{ flatten = true }, { linear = 19, pool = \"max\" }",
            "network.blocks[1]",
            "more than one",
        ),
        (
            "{ flatten = true }, { lif = false }",
            "network.blocks[1]",
            "no block kind",
        ),
        ("{ conv = 8 }", "network.blocks[0]", "needs kernel"),
        ("{ pool = \"min\", size = 2 }", "network.blocks[0]", "min"),
        ("{ conv = -8, kernel = 3 }", "network.blocks[0]", "-8"),
        (
            "{ flatten = false }",
            "network.blocks[0]",
            "flatten = false",
        ),
        (
            "{ flatten = true }, 19",
            "network.blocks[1]",
            "must be a table",
        ),
        (
            "{ pool = \"max\", size = 2, lif = false }",
            "network.blocks[0]",
            "lif",
        ),
    ];
    for (blocks, key, what) in cases {
        let err = match with_blocks(blocks) {
            Ok(_) => panic!("accepted {blocks}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(key), "{blocks}: {err}");
        assert!(err.contains(what), "{blocks}: {err}");
    }
    let err = load("[network]\nblocks = []\ndepth = 3\n").unwrap_err();
    assert!(err.to_string().contains("depth"), "{err}");
}

#[test]
fn sweeping_whole_block_lists() {
    let c = load(
        "[sweep]\n\"network.blocks\" = [\n  \"reference\",\n  \
         [{ conv = 8, kernel = 3 }, { pool = \"max\", size = 2 }, { flatten = true }, { linear = 19 }],\n  \
         [{ conv = 8, kernel = 3, stride = 2 }, { flatten = true }, { linear = 64 }, { linear = 19 }],\n]\n",
    )
    .unwrap();
    let confs = configurations(&c).unwrap();
    let labels: Vec<&str> = confs.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "network=reference",
            "network=c8k3-p2m-f19",
            "network=c8k3s2-f64-f19"
        ]
    );
    assert!(confs[0].baseline);
    assert!(confs[0].config.network.is_none());
    let mut names = Vec::new();
    for conf in &confs {
        conf.config.validate().unwrap();
        names.push(conf.config.network(19).unwrap().compact_name());
    }
    names.dedup();
    assert_eq!(names.len(), 3, "{names:?}");

    // The reference configuration plans the jobs of an experiment without
    // [network]; the others have their own ids.
    let files = file_list();
    let plain = plan(&load("").unwrap(), &files, None).unwrap();
    let swept = plan(&c, &files, None).unwrap();
    let per = plain.len();
    assert_eq!(swept.len(), 3 * per);
    assert!(swept[..per].iter().zip(&plain).all(|(a, b)| a.id == b.id));
    assert!(
        swept[per..]
            .iter()
            .all(|a| plain.iter().all(|b| a.id != b.id))
    );
}

#[test]
fn sweeping_one_value_of_a_block() {
    let c = load(&format!(
        "{EXAMPLE}[sweep]\n\"network.blocks.0.conv\" = [8, 16]\nnetwork.blocks.5.linear = [64, 128]\n"
    ))
    .unwrap();
    let confs = configurations(&c).unwrap();
    let labels: Vec<&str> = confs.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "blocks.0.conv=8 blocks.5.linear=64",
            "blocks.0.conv=8 blocks.5.linear=128",
            "blocks.0.conv=16 blocks.5.linear=64",
            "blocks.0.conv=16 blocks.5.linear=128",
        ]
    );
    let mut names: Vec<String> = confs
        .iter()
        .map(|conf| {
            conf.config.validate().unwrap();
            conf.config.network(19).unwrap().compact_name()
        })
        .collect();
    assert_eq!(names[3], "c16k5s2-p2m-c16k3p1-p2a-f128-f19");
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4);
}

#[test]
fn network_sweeps_that_cannot_apply_are_refused() {
    let cases = [
        // No [network] to change a block of.
        ("\"network.blocks.0.conv\" = [8, 16]\n", "no block list"),
        // A value that makes the network impossible.
        (
            "\"network.blocks.6.linear\" = [19, 10]\n",
            "network.blocks[6]",
        ),
        ("\"network.blocks.9.conv\" = [8]\n", "does not exist"),
        (
            "\"network.blocks.0.colour\" = [8]\n",
            "not a key a sweep can vary",
        ),
        ("\"network.layers\" = [8]\n", "not a key a sweep can vary"),
        (
            "\"network.blocks\" = [[{ conv = 8, kernel = 3 }]]\n",
            "network.blocks[0]",
        ),
    ];
    for (i, (sweep, what)) in cases.iter().enumerate() {
        let network = if i == 0 { "" } else { EXAMPLE };
        let err = match load(&format!("{network}[sweep]\n{sweep}")) {
            Ok(_) => panic!("accepted {sweep}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(what), "{sweep}: {err}");
    }
}

#[test]
fn random_sweeps_take_block_lists_and_block_values() {
    let c = load(&format!(
        "{EXAMPLE}[sweep]\nmode = \"random\"\nsamples = 3\nseed = 1\n\
         \"network.blocks.0.conv\" = {{ int_uniform = [4, 32] }}\n"
    ))
    .unwrap();
    let confs = configurations(&c).unwrap();
    assert_eq!(confs.len(), 4);
    for conf in &confs {
        conf.config.validate().unwrap();
    }
    // A choice of whole lists: the written one is the baseline, one drawn.
    let c = load(&format!(
        "{EXAMPLE}[sweep]\nmode = \"random\"\nsamples = 1\n\
         \"network.blocks\" = [\"reference\", [{{ flatten = true }}, {{ linear = 19 }}]]\n"
    ))
    .unwrap();
    let confs = configurations(&c).unwrap();
    assert_eq!(confs[0].label, "network=c8k5s2-p2m-c16k3p1-p2a-f64-f19");
    assert!(
        ["network=reference", "network=f19"].contains(&confs[1].label.as_str()),
        "{}",
        confs[1].label
    );
}

fn file_list() -> Vec<String> {
    let mut v: Vec<String> = (0..6).map(|i| format!("user{i:02}_indoor")).collect();
    v.extend((25..35).map(|i| format!("user{i:02}_imse")));
    v
}

/// The ids `plan.rs` pins for an experiment without `[network]` (computed
/// before networks were configurable) stand; a written `[network]`, even the
/// reference's blocks, gives other ids (its weights have other names).
#[test]
fn job_ids_without_network_are_unchanged() {
    let c = load("[protocol]\nseeds = [0, 1]\n").unwrap();
    let jobs = plan(&c, &file_list(), Some("fp")).unwrap();
    assert_eq!(jobs[0].id.as_str(), "8407b358d3444d6e");
    assert_eq!(jobs[15].id.as_str(), "d61110b8715d4555");

    let written = NetworkSpec::new(NetworkSpec::reference(19).blocks);
    let mut explicit = c.clone();
    explicit.network = Some(written);
    explicit.validate().unwrap();
    let other = plan(&explicit, &file_list(), Some("fp")).unwrap();
    assert!(other.iter().zip(&jobs).all(|(a, b)| a.id != b.id));
    assert_eq!(
        explicit.network(19).unwrap().param_names()[0],
        "blocks.0.weight"
    );
}

/// The PyTorch goldens of `worker/tests/fixtures/network_golden.py`: their
/// block lists read as specs whose shapes, parameter names and dimensions,
/// LIF layers and compact names are PyTorch's (the tensors themselves are
/// the worker's to check).
#[test]
fn pytorch_goldens_agree_with_the_spec() {
    for name in ["deeper", "maxpool", "wide"] {
        let path = format!(
            "{}/../worker/tests/fixtures/network_golden_{name}.safetensors",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap();
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
        let meta = &header["__metadata__"];
        let spec: NetworkSpec = serde_json::from_str(meta["network"].as_str().unwrap()).unwrap();
        assert_eq!(spec.compact_name(), meta["compact"].as_str().unwrap());
        let input = InputShape {
            channels: 2,
            x: 32,
            y: 32,
        };
        let lif = LifSettings {
            tau: 0.3,
            vth: 0.3,
            a: 0.5,
        };
        let net = spec.resolve(input, 19, lif).unwrap();
        let dims = |key: String| -> Vec<u64> {
            serde_json::from_value(header[&key]["shape"].clone()).unwrap()
        };
        let mut tensors = 0;
        for layer in &net.layers {
            if let Some(w) = layer.weight_name() {
                assert_eq!(
                    Some(dims(format!("init.{w}"))),
                    layer.weight_dims(),
                    "{name} {w}"
                );
                let b = layer.bias_name().unwrap();
                assert_eq!(
                    Some(dims(format!("grad.{b}"))),
                    layer.bias_dims(),
                    "{name} {b}"
                );
                tensors += 2;
            }
        }
        assert_eq!(tensors, net.param_names().len());
        let inits = header
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("init."))
            .count();
        assert_eq!(inits, tensors, "{name}");
        for layer in net.lif_layers() {
            let key = format!("spike_rate.{}", layer.name);
            assert!(header.get(&key).is_some(), "{name}: no {key}");
        }
        assert_eq!(dims("rates".into()), [2, 19]);
    }
}

/// The README's `[network]` example loads and has the name the README gives.
#[test]
fn the_readme_example_loads_with_its_name() {
    let c = with_blocks(
        "{ conv = 8, kernel = 5, stride = 2 }, { pool = \"max\", size = 2 }, \
         { conv = 16, kernel = 3, padding = 1, tau = 0.5 }, { pool = \"avg\", size = 2 }, \
         { flatten = true }, { linear = 64, lif = false }, { linear = 19 }",
    )
    .unwrap();
    assert_eq!(
        c.network(19).unwrap().compact_name(),
        "c8k5s2-p2m-c16k3p1t0.5-p2a-f64n-f19"
    );
}
