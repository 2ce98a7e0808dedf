//! The formats of a report, each read from a computed
//! [`Report`](super::compute::report::Report): Markdown ([`markdown`], with
//! its sections in [`markdown_sweep`], [`markdown_confusion`], [`early_stop`]
//! [`silent`], [`environment`] and [`verification`]), the methods paragraph ([`methods`], in Markdown and JSON), JSON
//! ([`json`]), CSV ([`csv`]) and plots ([`plots`], [`plots_sweep`]); the text
//! of figures shared between them is in [`text`].

pub mod csv;
pub mod early_stop;
pub mod environment;
pub mod json;
pub mod markdown;
pub mod markdown_confusion;
pub mod markdown_sweep;
pub mod methods;
pub mod plots;
pub mod plots_sweep;
pub mod silent;
pub mod text;
pub mod verification;
