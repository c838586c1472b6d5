//! Thumbnails: a PNG of at most [`SIDE`] pixels a side for each uploaded image, made after the
//! upload on a blocking thread, one at a time. An image is never decoded unless its header's
//! dimensions are within `--max-image-pixels`, and the decoder's allocations are capped too, so a
//! small file announcing a huge canvas (a decompression bomb) costs nothing.

use std::io::Cursor;

use super::sniff::Kind;

/// Longest side of a thumbnail, in pixels.
pub const SIDE: u32 = 320;

/// The dimensions an image's header announces, if the first bytes hold them.
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(head))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// A PNG thumbnail of `bytes`, an image of `kind`.
pub fn make(bytes: &[u8], max_pixels: u64, kind: Kind) -> Result<Vec<u8>, String> {
    let (width, height) =
        dimensions(bytes).ok_or_else(|| format!("unreadable {}", kind.content_type))?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(format!("{width}x{height} is more than {max_pixels} pixels"));
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // Four bytes a pixel, plus room for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 << 20));
    reader.limits(limits);
    let image = reader.decode().map_err(|e| e.to_string())?;
    let thumb = image.thumbnail(SIDE, SIDE);
    let mut png = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(png)
}
