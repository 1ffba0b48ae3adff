import CImageCodecs
import EffCore
import Foundation

/// A TIFF or BigTIFF of any size read region by region through libtiff (tiled or striped; any
/// compression, photometric and bit depth libtiff converts to RGB; a pyramid's full-resolution
/// level): only the tiles or strips a region touches are decoded. One reader serves one thread
/// at a time (reads are serialised).
public final class TIFFRegionReader: @unchecked Sendable {
    public let path: String
    public let width: Int
    public let height: Int
    /// The file's tile size; nil for a striped TIFF.
    public let tileSize: (width: Int, height: Int)?
    private let reader: OpaquePointer
    private let lock = NSLock()

    /// The largest picture side: 2^31 - 1 (libtiff's limit for a region is its 32-bit offsets).
    public static let maximumSide = Int(Int32.max)

    public init(contentsOf path: String) throws {
        if let problem = PathText.notARegularFile(path) { throw ImageError(.unreadable, path, "cannot read the file (\(problem))") }
        var message = [CChar](repeating: 0, count: 512)
        guard let reader = eff_tiff_reader_open(path, &message, message.count) else {
            throw ImageError(.corrupt, path, String(cBuffer: message))
        }
        var w: UInt32 = 0, h: UInt32 = 0, tw: UInt32 = 0, th: UInt32 = 0
        eff_tiff_reader_size(reader, &w, &h, &tw, &th)
        self.path = path
        self.reader = reader
        width = Int(w)
        height = Int(h)
        tileSize = tw > 0 ? (Int(tw), Int(th)) : nil
    }

    deinit { eff_tiff_reader_close(reader) }

    /// The region as RGB; `ImageError` when the file's data for it is damaged or missing.
    public func read(x: Int, y: Int, width regionWidth: Int, height regionHeight: Int) throws -> RGBImage {
        try checkRegion(x: x, y: y, width: regionWidth, height: regionHeight, of: width, height, path: path)
        var message = [CChar](repeating: 0, count: 512)
        var status: Int32 = EFF_OK
        let pixels = [UInt8](unsafeUninitializedCapacity: regionWidth * regionHeight * 3) { buffer, initialised in
            lock.withLock {
                status = eff_tiff_reader_read(reader, UInt32(x), UInt32(y), UInt32(regionWidth), UInt32(regionHeight), buffer.baseAddress, &message, message.count)
            }
            if status != EFF_OK { buffer.initialize(repeating: 0) }
            initialised = buffer.count
        }
        guard status == EFF_OK else { throw ImageError(.corrupt, path, String(cBuffer: message)) }
        return try RGBImage(width: regionWidth, height: regionHeight, pixels: pixels)
    }

}

/// A class mask of any size written as a tiled, deflate-compressed palette TIFF (BigTIFF when
/// large), rows given top to bottom; the file appears at its path only when `finish` succeeds.
public final class TIFFMaskWriter {
    public let path: String
    public let width: Int
    public let height: Int
    private var writer: OpaquePointer?
    private let pending: AtomicFile.Pending

    public init(path: String, width: Int, height: Int, palette: [(UInt8, UInt8, UInt8)]) throws {
        guard width > 0, height > 0, width <= TIFFRegionReader.maximumSide, height <= TIFFRegionReader.maximumSide, !palette.isEmpty else {
            throw ImageError(.invalidArgument, path, "cannot write a \(width)x\(height) mask")
        }
        pending = try ImageError.whileWriting { try AtomicFile.Pending(for: path) }
        var message = [CChar](repeating: 0, count: 256)
        let colours = palette.prefix(256).flatMap { [$0.0, $0.1, $0.2] }
        guard let writer = eff_tiff_mask_writer_open(pending.temporaryPath, UInt32(width), UInt32(height), colours, Int32(colours.count / 3), &message, message.count) else {
            pending.abandon()
            throw ImageError(.unwritable, path, String(cBuffer: message))
        }
        self.writer = writer
        self.path = path
        self.width = width
        self.height = height
    }

    deinit {
        if let writer {
            var message = [CChar](repeating: 0, count: 8)
            _ = eff_tiff_mask_writer_close(writer, 1, &message, message.count)
        }
    }

    /// Appends `rows.count / width` rows of class indices.
    public func add(rows: [UInt8]) throws {
        guard let writer, rows.count % width == 0 else { throw ImageError(.invalidArgument, path, "mask rows of a wrong size") }
        var message = [CChar](repeating: 0, count: 256)
        guard eff_tiff_mask_writer_add_rows(writer, rows, UInt32(rows.count / width), &message, message.count) == EFF_OK else {
            throw ImageError(.unwritable, path, String(cBuffer: message))
        }
    }

    /// Completes the file and puts it in place.
    public func finish() throws {
        guard let writer else { return }
        self.writer = nil
        var message = [CChar](repeating: 0, count: 256)
        guard eff_tiff_mask_writer_close(writer, 0, &message, message.count) == EFF_OK else {
            pending.abandon()
            throw ImageError(.unwritable, path, String(cBuffer: message))
        }
        try ImageError.whileWriting { try pending.commit() }
    }

    /// Stops and removes what was written.
    public func abandon() {
        if let writer {
            var message = [CChar](repeating: 0, count: 8)
            _ = eff_tiff_mask_writer_close(writer, 1, &message, message.count)
            self.writer = nil
        }
        pending.abandon()
    }
}

/// Refuses a region outside a `width` x `height` picture, or one over the pixel limit: what
/// every region reader checks before it reads.
func checkRegion(x: Int, y: Int, width regionWidth: Int, height regionHeight: Int, of width: Int, _ height: Int, path: String) throws {
    guard x >= 0, y >= 0, regionWidth > 0, regionHeight > 0, x + regionWidth <= width, y + regionHeight <= height,
          regionWidth * regionHeight <= ImageCodec.defaultMaxPixels else {
        throw ImageError(.invalidArgument, path, "cannot read the region \(regionWidth)x\(regionHeight) at \(x),\(y) of a \(width)x\(height) picture")
    }
}
