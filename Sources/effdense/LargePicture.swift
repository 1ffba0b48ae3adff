import EffCore
import EffDense
import EffImage
import Foundation

/// Which pictures are read region by region (segment and detect in tiles), and how: whole-slide
/// images of vendor formats through OpenSlide, TIFFs through libtiff, large PNGs and JPEGs as
/// streams of rows.
enum LargePicture {
    /// How a picture is read: from one look at its first bytes (a FIFO or a device is never
    /// opened here: opening a FIFO would wait for a writer).
    enum Reading {
        /// A whole-slide image of a vendor format (OpenSlide).
        case slide
        /// A TIFF (libtiff, region by region when large).
        case tiff
        /// A PNG or JPEG over the pixel limit, read as a stream of rows.
        case rows
        /// Anything else: decoded whole.
        case whole
    }

    static func reading(_ path: String) -> Reading {
        guard PathText.notARegularFile(path) == nil, let handle = FileHandle(forReadingAtPath: path) else { return .whole }
        let head = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        try? handle.close()
        if WholeSlideReader.vendor(of: path, head: head) != nil { return .slide }
        switch ImageFormat.sniff(head) {
        case .tiff:
            return .tiff
        case .png, .jpeg:
            guard let size = ImageCodec.headerSize(head) else { return .whole }
            return size.width.multipliedReportingOverflow(by: size.height).partialValue > ImageCodec.defaultMaxPixels ? .rows : .whole
        default:
            return .whole
        }
    }

    /// A picture too large to decode whole (over the pixel limit), so segmented or detected in
    /// tiles even without --tile: a whole-slide image of a vendor format (always), a TIFF, or a
    /// PNG or JPEG (read as a stream of rows).
    static func isLarge(_ path: String) -> Bool {
        switch reading(path) {
        case .slide, .rows: return true
        case .tiff: return (try? TIFFRegionReader(contentsOf: path)).map { $0.width * $0.height > ImageCodec.defaultMaxPixels } ?? false
        case .whole: return false
        }
    }

    /// The picture as a source of regions for a tiled run, and the picture itself when it fits
    /// the pixel limit (decoded whole, upright): a large TIFF is read region by region, a large
    /// PNG or JPEG as a stream of rows. `wholeTIFFs`: read a TIFF region by region even when it
    /// would fit.
    static func source(_ path: String, wholeTIFFs: Bool = false) throws -> (source: PixelSource, decoded: RGBImage?) {
        switch reading(path) {
        case .slide:
            return (try WholeSlideReader(contentsOf: path), nil)
        case .rows:
            return (try StreamedPicture(contentsOf: path), nil)
        case .tiff:
            let reader = try TIFFRegionReader(contentsOf: path)
            if wholeTIFFs || reader.width * reader.height > ImageCodec.defaultMaxPixels { return (reader, nil) }
        case .whole:
            break
        }
        let picture = try ImageCodec.decode(contentsOf: path)
        return (PictureSource(picture), picture)
    }
}
