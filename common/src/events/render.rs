//! A picture of a sample: its frames side by side in a grid, ON events in one
//! colour (orange) and OFF events in another (blue), brighter for more events.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::events::frames::FrameSpec;

/// ON colour (RGB).
pub const ON_COLOUR: [u8; 3] = [255, 140, 0];
/// OFF colour (RGB).
pub const OFF_COLOUR: [u8; 3] = [30, 144, 255];

/// Why a PNG could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    #[error("{path}: PNG encoding failed: {source}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What the encoder said.
        #[source]
        source: png::EncodingError,
    },
    /// Nothing to draw (zero steps or an empty grid).
    #[error("nothing to render: {what}")]
    Empty {
        /// What is empty.
        what: &'static str,
    },
}

/// An RGB image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes, row-major RGB.
    pub rgb: Vec<u8>,
}

/// Draws `[2, X, Y, T]` frames (any bin mode) as a grid of `columns` tiles, each
/// frame scaled by `scale`, with a 2-pixel grey gutter. Image rows are y, columns
/// are x (the reference's convention; jAER's viewer shows x and y swapped). Each
/// polarity's brightness is its value over the largest value of the tensor.
pub fn draw(
    frames: &[f32],
    spec: &FrameSpec,
    columns: usize,
    scale: usize,
) -> Result<Image, RenderError> {
    let [_, w, h, steps] = spec.shape();
    if steps == 0 || w == 0 || h == 0 || columns == 0 || scale == 0 || frames.len() != spec.len() {
        return Err(RenderError::Empty {
            what: "no frames, or a tensor that does not match its spec",
        });
    }
    let gutter = 2;
    let cols = columns.min(steps);
    let rows = steps.div_ceil(cols);
    let (tw, th) = (w * scale, h * scale);
    let width = cols * tw + (cols + 1) * gutter;
    let height = rows * th + (rows + 1) * gutter;
    let mut rgb = vec![64u8; width * height * 3];
    let max = frames
        .iter()
        .copied()
        .fold(0.0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let at = |p: usize, x: usize, y: usize, t: usize| frames[((p * w + x) * h + y) * steps + t];
    for t in 0..steps {
        let (ox, oy) = (
            gutter + (t % cols) * (tw + gutter),
            gutter + (t / cols) * (th + gutter),
        );
        for y in 0..h {
            for x in 0..w {
                let off = (at(0, x, y, t) / max).min(1.0);
                let on = (at(1, x, y, t) / max).min(1.0);
                // Faint values stay visible: brightness is a square root.
                let (on, off) = (on.sqrt(), off.sqrt());
                let mut px = [0u8; 3];
                for (c, v) in px.iter_mut().enumerate() {
                    let mixed = on * f32::from(ON_COLOUR[c]) + off * f32::from(OFF_COLOUR[c]);
                    *v = mixed.min(255.0) as u8;
                }
                for dy in 0..scale {
                    let row = oy + y * scale + dy;
                    for dx in 0..scale {
                        let i = (row * width + ox + x * scale + dx) * 3;
                        rgb[i..i + 3].copy_from_slice(&px);
                    }
                }
            }
        }
    }
    Ok(Image { width, height, rgb })
}

/// Writes an image as an 8-bit RGB PNG.
pub fn write_png(image: &Image, path: &Path) -> Result<(), RenderError> {
    let file = std::fs::File::create(path).map_err(|source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let enc_err = |source| RenderError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let mut encoder = png::Encoder::new(
        BufWriter::new(file),
        image.width as u32,
        image.height as u32,
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(enc_err)?;
    writer.write_image_data(&image.rgb).map_err(enc_err)?;
    writer.finish().map_err(enc_err)
}
