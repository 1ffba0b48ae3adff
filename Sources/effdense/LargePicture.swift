import EffCore
import EffDense
import EffImage
import Foundation

/// Which pictures are read region by region (segment and detect in tiles), and how: whole-slide
/// images of vendor formats through OpenSlide, TIFFs through libtiff, large PNGs and JPEGs as
/// streams of rows.
enum LargePicture {
    /// A picture too large to decode whole (over the pixel limit), so segmented or detected in
    /// tiles even without --tile: a whole-slide image of a vendor format (always), a TIFF, or a
    /// PNG or JPEG (read as a stream of rows).
    static func isLarge(_ path: String) -> Bool {
        guard let head = head(of: path, count: 1 << 20) else { return false }
        if WholeSlideReader.vendor(of: path) != nil { return true }
        switch ImageFormat.sniff(head) {
        case .tiff:
            guard let reader = try? TIFFRegionReader(contentsOf: path) else { return false }
            return reader.width * reader.height > ImageCodec.defaultMaxPixels
        case .png, .jpeg:
            guard let size = ImageCodec.headerSize(head) else { return false }
            return size.width.multipliedReportingOverflow(by: size.height).partialValue > ImageCodec.defaultMaxPixels
        default:
            return false
        }
    }

    /// The picture as a source of regions for a tiled run, and the picture itself when it fits
    /// the pixel limit (decoded whole, upright): a large TIFF is read region by region, a large
    /// PNG or JPEG as a stream of rows. `wholeTIFFs`: read a TIFF region by region even when it
    /// would fit.
    static func source(_ path: String, wholeTIFFs: Bool = false) throws -> (source: PixelSource, decoded: RGBImage?) {
        if WholeSlideReader.vendor(of: path) != nil {
            return (try WholeSlideReader(contentsOf: path), nil)
        }
        if isTIFF(path) {
            let reader = try TIFFRegionReader(contentsOf: path)
            if wholeTIFFs || reader.width * reader.height > ImageCodec.defaultMaxPixels { return (reader, nil) }
        } else if isLarge(path) {
            return (try StreamedPicture(contentsOf: path), nil)
        }
        let picture = try ImageCodec.decode(contentsOf: path)
        return (PictureSource(picture), picture)
    }

    /// Whether `path` is a regular file starting with a TIFF signature.
    static func isTIFF(_ path: String) -> Bool {
        guard let head = head(of: path, count: 16) else { return false }
        return ImageFormat.sniff(head) == .tiff
    }

    /// The first `count` bytes of a regular file (a FIFO or a device is never opened here:
    /// opening a FIFO would wait for a writer).
    private static func head(of path: String, count: Int) -> Data? {
        guard PathText.notARegularFile(path) == nil, let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return try? handle.read(upToCount: count)
    }
}
