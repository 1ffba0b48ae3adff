import EffCore
import EffImage
import Foundation

/// Which pictures are read region by region (segment and detect in tiles).
enum LargePicture {
    /// A TIFF too large to decode whole: segmented (or detected) in tiles even without --tile.
    static func isLargeTIFF(_ path: String) -> Bool {
        guard isTIFF(path), let reader = try? TIFFRegionReader(contentsOf: path) else { return false }
        return reader.width * reader.height > ImageCodec.defaultMaxPixels
    }

    /// Whether `path` is a regular file starting with a TIFF signature (a FIFO or a device is
    /// never opened here: opening a FIFO would wait for a writer).
    static func isTIFF(_ path: String) -> Bool {
        guard PathText.notARegularFile(path) == nil, let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 16) else { return false }
        return ImageFormat.sniff(head) == .tiff
    }
}
