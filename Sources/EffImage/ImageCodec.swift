import CImageCodecs
import EffCore
import Foundation

/// A picture that cannot be read or written, naming the file and the problem.
public struct ImageError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case unreadable, empty, unknownFormat, corrupt, tooLarge, unwritable, invalidArgument
    }
    public let kind: Kind
    /// The file (or a description of the source) concerned.
    public let source: String
    public let problem: String

    public init(_ kind: Kind, _ source: String, _ problem: String) {
        self.kind = kind
        self.source = source
        self.problem = problem
    }

    public var description: String { "\(source): \(problem)" }
}

extension ImageError {
    /// Runs `body` (writing an output through `AtomicFile`), its `AtomicFileError` turned into an
    /// `.unwritable` ImageError naming the file.
    public static func whileWriting<Result>(_ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as AtomicFileError {
            throw ImageError(.unwritable, error.path, error.problem)
        }
    }
}

/// The container formats effdense reads, recognised by content, not by extension.
public enum ImageFormat: String, Sendable {
    case png, jpeg, bmp, gif, webp, tiff

    /// The format whose signature starts `bytes`, if any.
    public static func sniff<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> ImageFormat? {
        let head = Array(bytes.prefix(12))
        func starts(_ signature: [UInt8]) -> Bool { head.starts(with: signature) }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return .gif }
        if starts(Array("BM".utf8)) { return .bmp }
        if starts(Array("RIFF".utf8)) && head.count == 12 && Array(head[8..<12]) == Array("WEBP".utf8) { return .webp }
        // TIFF and BigTIFF (version 43), little- and big-endian.
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) || starts([0x49, 0x49, 0x2B, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2B]) { return .tiff }
        return nil
    }

    /// The name used in messages.
    var name: String { self == .jpeg ? "JPEG" : self == .webp ? "WebP" : rawValue.uppercased() }

    /// The C shim's (header, decode) pair for this format.
    var codec: (readHeader: HeaderReader, decode: RGBDecoder) {
        switch self {
        case .png: return (eff_png_read_header, eff_png_decode_rgb8)
        case .jpeg: return (eff_jpeg_read_header, eff_jpeg_decode_rgb8)
        case .bmp, .gif: return (eff_stb_read_header, eff_stb_decode_rgb8)
        case .webp: return (eff_webp_read_header, eff_webp_decode_rgb8)
        case .tiff: return (eff_tiff_read_header, eff_tiff_decode_rgb8)
        }
    }

    typealias HeaderReader = (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?,
                              UnsafeMutablePointer<CChar>?, Int) -> Int32
    typealias RGBDecoder = (UnsafePointer<UInt8>?, Int, UInt32, UInt32, UnsafeMutablePointer<UInt8>?,
                            UnsafeMutablePointer<CChar>?, Int) -> Int32
}

/// How PNG pixels are laid out when encoding.
public enum PNGPixelFormat: Sendable, Equatable {
    /// 1 byte a pixel.
    case gray
    /// 3 bytes a pixel.
    case rgb
    /// 4 bytes a pixel.
    case rgba
    /// 1 byte a pixel, an index into the given colours (at most 256 RGB triples).
    case palette([(UInt8, UInt8, UInt8)])

    var bytesPerPixel: Int {
        switch self {
        case .gray, .palette: return 1
        case .rgb: return 3
        case .rgba: return 4
        }
    }

    public static func == (a: PNGPixelFormat, b: PNGPixelFormat) -> Bool {
        switch (a, b) {
        case (.gray, .gray), (.rgb, .rgb), (.rgba, .rgba): return true
        case let (.palette(x), .palette(y)): return x.elementsEqual(y) { $0 == $1 }
        default: return false
        }
    }
}

/// PNG and JPEG decoding to 8-bit RGB, and PNG encoding, through libpng and libjpeg-turbo.
public enum ImageCodec {
    /// The largest picture decoded unless the caller says otherwise: 100 megapixels.
    public static let defaultMaxPixels = 100_000_000

    /// Reads and decodes the picture (PNG, JPEG, BMP, GIF, WebP, TIFF) at `path`, shown as its EXIF orientation says (a phone's
    /// photo stored sideways comes out upright, as OpenCV and ultralytics read it) unless
    /// `applyingOrientation` is false (Pillow's `Image.open`, which ignores the tag).
    public static func decode(contentsOf path: String, maxPixels: Int = defaultMaxPixels, applyingOrientation: Bool = true) throws -> RGBImage {
        let data = try readFile(path)
        let image = try decode(data, source: path, maxPixels: maxPixels)
        return applyingOrientation ? image.oriented(orientation(of: data)) : image
    }

    /// The EXIF orientation (1...8) of JPEG bytes; 1 for other pictures and when there is none.
    public static func orientation(of data: Data) -> Int {
        guard ImageFormat.sniff(data) == .jpeg else { return 1 }
        return data.withUnsafeBytes { raw in
            Int(eff_jpeg_orientation(raw.bindMemory(to: UInt8.self).baseAddress, raw.count))
        }
    }

    /// The picture size its header gives, from the file's first bytes (`head`, e.g. its first
    /// MB); nil when they are not a picture's or do not hold the whole header.
    public static func headerSize(_ head: Data) -> (width: Int, height: Int)? {
        guard let format = ImageFormat.sniff(head) else { return nil }
        return head.withUnsafeBytes { raw -> (width: Int, height: Int)? in
            var width: UInt32 = 0, height: UInt32 = 0
            var message = [CChar](repeating: 0, count: 256)
            guard format.codec.readHeader(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, &width, &height, &message, message.count) == EFF_OK else { return nil }
            return (Int(width), Int(height))
        }
    }

    /// Decodes PNG, JPEG, BMP, GIF (first frame), WebP or TIFF bytes (recognised by content) to RGB. Pictures of more than
    /// `maxPixels` pixels are refused before their pixels are allocated.
    public static func decode(_ data: Data, source: String, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        guard !data.isEmpty else { throw ImageError(.empty, source, "the file is empty (0 bytes)") }
        guard let format = ImageFormat.sniff(data) else {
            throw ImageError(.unknownFormat, source, "not a picture effdense reads (PNG, JPEG, BMP, GIF, WebP, TIFF: unrecognised signature)")
        }
        let (readHeader, decodeRGB) = format.codec
        let name = format.name
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> RGBImage in
            let bytes = raw.bindMemory(to: UInt8.self)
            var width: UInt32 = 0, height: UInt32 = 0
            var message = [CChar](repeating: 0, count: 256)
            let headerStatus = readHeader(bytes.baseAddress, bytes.count, &width, &height, &message, message.count)
            guard headerStatus == EFF_OK else {
                throw ImageError(.corrupt, source, "corrupt \(name): \(String(cBuffer: message))")
            }
            guard width > 0, height > 0 else {
                throw ImageError(.corrupt, source, "corrupt \(name): the header says \(width)x\(height) pixels")
            }
            // TIFF sides go to 2^32 - 1: their product can pass Int (found by Fuzz/).
            let (pixelCount, overflow) = Int(width).multipliedReportingOverflow(by: Int(height))
            guard !overflow, pixelCount <= maxPixels else {
                throw ImageError(.tooLarge, source, "the \(name) is \(width)x\(height)\(overflow ? "" : " = \(pixelCount)") pixels, more than the limit of \(maxPixels)")
            }
            var status: Int32 = EFF_OK
            let pixels = [UInt8](unsafeUninitializedCapacity: pixelCount * 3) { buffer, initialised in
                status = decodeRGB(bytes.baseAddress, bytes.count, width, height, buffer.baseAddress, &message, message.count)
                if status != EFF_OK { buffer.initialize(repeating: 0) }
                initialised = buffer.count
            }
            guard status == EFF_OK else {
                throw ImageError(.corrupt, source, "corrupt \(name): \(String(cBuffer: message))")
            }
            return try RGBImage(width: Int(width), height: Int(height), pixels: pixels)
        }
    }

    /// A class mask read from a PNG: one byte a pixel, the palette index (VOC's
    /// SegmentationClass, effdense's own masks) or the gray value.
    public struct IndexedMask: Sendable {
        public let width: Int
        public let height: Int
        public let indices: [UInt8]
    }

    /// Reads a mask PNG (palette or 8-bit gray) as class indices; any other picture is refused.
    public static func decodeIndexed(contentsOf path: String, maxPixels: Int = defaultMaxPixels) throws -> IndexedMask {
        let data = try readFile(path)
        guard ImageFormat.sniff(data) == .png else { throw ImageError(.unknownFormat, path, "a mask must be a PNG (palette or 8-bit gray)") }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> IndexedMask in
            let bytes = raw.bindMemory(to: UInt8.self)
            var width: UInt32 = 0, height: UInt32 = 0
            var message = [CChar](repeating: 0, count: 256)
            guard eff_png_read_header(bytes.baseAddress, bytes.count, &width, &height, &message, message.count) == EFF_OK, width > 0, height > 0 else {
                throw ImageError(.corrupt, path, "corrupt PNG: \(String(cBuffer: message))")
            }
            let (pixelCount, overflow) = Int(width).multipliedReportingOverflow(by: Int(height))
            guard !overflow, pixelCount <= maxPixels else {
                throw ImageError(.tooLarge, path, "the mask is \(width)x\(height) pixels, more than the limit of \(maxPixels)")
            }
            var status: Int32 = EFF_OK
            let indices = [UInt8](unsafeUninitializedCapacity: pixelCount) { buffer, initialised in
                status = eff_png_decode_indexed(bytes.baseAddress, bytes.count, width, height, buffer.baseAddress, &message, message.count)
                if status != EFF_OK { buffer.initialize(repeating: 0) }
                initialised = buffer.count
            }
            guard status == EFF_OK else { throw ImageError(.corrupt, path, String(cBuffer: message)) }
            return IndexedMask(width: Int(width), height: Int(height), indices: indices)
        }
    }

    /// Encodes 8-bit pixels as a PNG in memory.
    public static func encodePNG(pixels: [UInt8], width: Int, height: Int, format: PNGPixelFormat) throws -> Data {
        let source = "PNG encoder"
        guard width > 0, height > 0, width <= Int(UInt32.max), height <= Int(UInt32.max) else {
            throw ImageError(.invalidArgument, source, "cannot encode a \(width)x\(height) picture")
        }
        guard pixels.count == width * height * format.bytesPerPixel else {
            throw ImageError(.invalidArgument, source, "\(width)x\(height) needs \(width * height * format.bytesPerPixel) bytes, found \(pixels.count)")
        }
        let colorType: Int32
        var palette: [UInt8] = []
        switch format {
        case .gray: colorType = EFF_PNG_GRAY
        case .rgb: colorType = EFF_PNG_RGB
        case .rgba: colorType = EFF_PNG_RGBA
        case .palette(let colours):
            guard (1...256).contains(colours.count) else {
                throw ImageError(.invalidArgument, source, "a palette needs 1 to 256 colours, found \(colours.count)")
            }
            if let top = pixels.max(), Int(top) >= colours.count {
                throw ImageError(.invalidArgument, source, "pixel index \(top) is outside the \(colours.count)-colour palette")
            }
            colorType = EFF_PNG_PALETTE
            palette = colours.flatMap { [$0.0, $0.1, $0.2] }
        }
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = eff_png_encode(pixels, UInt32(width), UInt32(height), colorType,
                                    palette, Int32(palette.count / 3), &output, &size, &message, message.count)
        guard status == EFF_OK, let output else {
            throw ImageError(.invalidArgument, source, "libpng: \(String(cBuffer: message))")
        }
        defer { eff_free(output) }
        return Data(bytes: output, count: size)
    }

    /// Encodes an RGB picture as a PNG and writes it atomically to `path`.
    public static func writePNG(_ image: RGBImage, to path: String) throws {
        try writePNG(pixels: image.pixels, width: image.width, height: image.height, format: .rgb, to: path)
    }

    /// Encodes pixels as a PNG and writes it to `path` through a temporary file and a rename
    /// (`AtomicFile`), so a failure or an interrupt never leaves a partial file.
    public static func writePNG(pixels: [UInt8], width: Int, height: Int, format: PNGPixelFormat, to path: String) throws {
        try writeFiles([(try encodePNG(pixels: pixels, width: width, height: height, format: format), path)])
    }

    /// Writes encoded files all or nothing (a mask and its overlay): `AtomicFile.write`, its
    /// failure as an `ImageError` naming the file.
    public static func writeFiles(_ files: [(data: Data, path: String)]) throws {
        try ImageError.whileWriting { try AtomicFile.write(files) }
    }

    /// The bytes of the regular file at `path` (a FIFO or a folder is refused, never opened).
    private static func readFile(_ path: String) throws -> Data {
        if let problem = PathText.notARegularFile(path) { throw ImageError(.unreadable, path, "cannot read the file (\(problem))") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw ImageError(.unreadable, path, "cannot read the file (\(readFailureReason(path)))")
        }
    }

    private static func readFailureReason(_ path: String) -> String {
        guard FileManager.default.fileExists(atPath: path) else { return "no such file" }
        return PathText.existingNonFile(path) ?? "permission denied"
    }
}
