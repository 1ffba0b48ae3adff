import CImageCodecs
import EffCore
import Foundation

/// A PNG or JPEG too large to decode whole, read from its file top to bottom as a stream of rows
/// (libpng, libjpeg-turbo): regions are served from a window of rows that only moves down, so
/// memory holds about two regions' heights of rows, whatever the picture's height. A region
/// above the window starts a new pass from the top of the file (a second pass, e.g. for a
/// downscaled preview). Interlaced PNGs and progressive JPEGs cannot be streamed and are refused
/// when opened; the EXIF orientation of a JPEG is not applied (the stored pixels are read). One
/// reader serves one thread at a time (reads are serialised).
public final class StreamedPicture: @unchecked Sendable {
    public let path: String
    public let format: ImageFormat
    public let width: Int
    public let height: Int
    private var rows: RowReader
    private let lock = NSLock()
    /// Rows `windowTop ..< windowTop + window.count / rowBytes`, RGB.
    private var window: [UInt8] = []
    private var windowTop = 0
    /// The next row the reader gives.
    private var nextRow = 0
    private var failure: ImageError?

    /// Opens `path` (a PNG or JPEG, recognised by content) and reads its header.
    public init(contentsOf path: String) throws {
        if let problem = PathText.notARegularFile(path) { throw ImageError(.unreadable, path, "cannot read the file (\(problem))") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ImageError(.unreadable, path, "cannot read the file (permission denied)") }
        let head = (try? handle.read(upToCount: 16)) ?? Data()
        try? handle.close()
        guard let format = ImageFormat.sniff(head), format == .png || format == .jpeg else {
            throw ImageError(.unknownFormat, path, "only PNG and JPEG pictures are read as a stream of rows")
        }
        self.path = path
        self.format = format
        rows = try RowReader(path: path, format: format)
        width = rows.width
        height = rows.height
        guard width > 0, height > 0 else { throw ImageError(.corrupt, path, "corrupt \(format.name): the header says \(width)x\(height) pixels") }
    }

    /// The region as RGB; `ImageError` when the file's data for it is damaged or missing (then
    /// every later read fails too).
    public func read(x: Int, y: Int, width regionWidth: Int, height regionHeight: Int) throws -> RGBImage {
        try checkRegion(x: x, y: y, width: regionWidth, height: regionHeight, of: width, height, path: path)
        return try lock.withLock {
            if let failure { throw failure }
            do {
                try advance(top: y, bottom: y + regionHeight, keeping: regionHeight)
            } catch let error as ImageError {
                failure = error
                throw error
            }
            let rowBytes = width * 3
            var pixels = [UInt8](repeating: 0, count: regionWidth * regionHeight * 3)
            for row in 0..<regionHeight {
                let from = (y + row - windowTop) * rowBytes + x * 3
                pixels.replaceSubrange((row * regionWidth * 3)..<((row + 1) * regionWidth * 3), with: window[from..<(from + regionWidth * 3)])
            }
            return try RGBImage(width: regionWidth, height: regionHeight, pixels: pixels)
        }
    }

    /// Moves the window so it holds rows `top..<bottom`, keeping up to `keeping` rows above `top`
    /// for regions of the band before that are still being read by other threads.
    private func advance(top: Int, bottom: Int, keeping: Int) throws {
        let rowBytes = width * 3
        if top < windowTop {
            // Above the window: a new pass from the top of the file.
            rows = try RowReader(path: path, format: format)
            window = []
            windowTop = 0
            nextRow = 0
        }
        let keepFrom = max(windowTop, top - keeping)
        if keepFrom > windowTop {
            let drop = min(keepFrom, nextRow) - windowTop
            window.removeFirst(drop * rowBytes)
            windowTop += drop
        }
        // Rows wholly above what is kept are read and thrown away.
        if nextRow < keepFrom {
            var scratch = [UInt8](repeating: 0, count: rowBytes * 64)
            while nextRow < keepFrom {
                let count = min(64, keepFrom - nextRow)
                try rows.read(into: &scratch, count: count, source: path)
                nextRow += count
            }
            windowTop = nextRow
        }
        if bottom > nextRow {
            let count = bottom - nextRow
            let start = window.count
            window.append(contentsOf: repeatElement(0, count: count * rowBytes))
            try window.withUnsafeMutableBufferPointer { buffer in
                try rows.read(into: buffer.baseAddress! + start, count: count, source: path)
            }
            nextRow = bottom
        }
    }
}

/// libpng's or libjpeg's row reader over one pass of a file.
private final class RowReader {
    private var png: OpaquePointer?
    private var jpeg: OpaquePointer?
    let width: Int
    let height: Int
    private let name: String

    init(path: String, format: ImageFormat) throws {
        var message = [CChar](repeating: 0, count: 256)
        var w: UInt32 = 0, h: UInt32 = 0
        name = format.name
        if format == .png {
            png = eff_png_rows_open(path, &w, &h, &message, message.count)
        } else {
            jpeg = eff_jpeg_rows_open(path, &w, &h, &message, message.count)
        }
        guard png != nil || jpeg != nil else { throw ImageError(.corrupt, path, "corrupt \(format.name): \(String(cBuffer: message))") }
        width = Int(w)
        height = Int(h)
    }

    deinit {
        if let png { eff_png_rows_close(png) }
        if let jpeg { eff_jpeg_rows_close(jpeg) }
    }

    func read(into buffer: UnsafeMutablePointer<UInt8>, count: Int, source: String) throws {
        var message = [CChar](repeating: 0, count: 256)
        let status = png.map { eff_png_rows_read($0, buffer, UInt32(count), &message, message.count) }
            ?? jpeg.map { eff_jpeg_rows_read($0, buffer, UInt32(count), &message, message.count) } ?? EFF_ERR_CORRUPT
        guard status == EFF_OK else { throw ImageError(.corrupt, source, "corrupt \(name): \(String(cBuffer: message))") }
    }

    func read(into buffer: inout [UInt8], count: Int, source: String) throws {
        try buffer.withUnsafeMutableBufferPointer { try read(into: $0.baseAddress!, count: count, source: source) }
    }
}
