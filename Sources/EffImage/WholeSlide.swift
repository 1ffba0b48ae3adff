import COpenSlide
import EffCore
import Foundation

/// A whole-slide image in a vendor format — Aperio SVS, Hamamatsu NDPI / VMS, 3DHISTECH MRXS,
/// Leica SCN, Ventana BIF, Philips TIFF, Sakura SVSLIDE, Trestle — read region by region through
/// OpenSlide at full resolution (level 0). Areas the scanner left out (transparent in OpenSlide)
/// come out in the slide's background colour, white when it names none. Reads may run on
/// several threads at once (OpenSlide handles are thread-safe).
public final class WholeSlideReader: @unchecked Sendable {
    public let path: String
    public let width: Int
    public let height: Int
    /// OpenSlide's name for the format (`aperio`, `hamamatsu`, `mirax`, ...).
    public let vendor: String
    private let slide: OpaquePointer
    private let background: (r: UInt32, g: UInt32, b: UInt32)

    /// OpenSlide's vendor for the file at `path` when it is a whole slide of a vendor format; nil
    /// for anything else, plain (generic) TIFFs included — those are read by `TIFFRegionReader`.
    public static func vendor(of path: String) -> String? {
        guard PathText.notARegularFile(path) == nil, let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return vendor(of: path, head: (try? handle.read(upToCount: 16)) ?? Data())
    }

    /// `vendor(of:)` for a file whose first bytes are `head`: only TIFF-based files and the
    /// formats' own extensions are asked (OpenSlide opens the file).
    public static func vendor(of path: String, head: Data) -> String? {
        let ownExtensions: Set<String> = ["mrxs", "vms", "vmu", "svslide"]
        let pathExtension = PathText.lastComponent(path).split(separator: ".").last.map { $0.lowercased() } ?? ""
        guard ImageFormat.sniff(head) == .tiff || ownExtensions.contains(pathExtension),
              let vendor = openslide_detect_vendor(path).map({ String(cString: $0) }), vendor != "generic-tiff" else { return nil }
        return vendor
    }

    public init(contentsOf path: String) throws {
        if let problem = PathText.notARegularFile(path) { throw ImageError(.unreadable, path, "cannot read the file (\(problem))") }
        guard let vendor = Self.vendor(of: path) else {
            throw ImageError(.unknownFormat, path, "not a whole-slide image OpenSlide reads")
        }
        guard let slide = openslide_open(path) else {
            throw ImageError(.corrupt, path, "corrupt \(vendor) slide: OpenSlide cannot open it")
        }
        if let error = openslide_get_error(slide) {
            let message = String(cString: error)
            openslide_close(slide)
            throw ImageError(.corrupt, path, "corrupt \(vendor) slide: \(message)")
        }
        var w: Int64 = 0, h: Int64 = 0
        openslide_get_level0_dimensions(slide, &w, &h)
        guard w > 0, h > 0, w <= Int64(TIFFRegionReader.maximumSide), h <= Int64(TIFFRegionReader.maximumSide) else {
            openslide_close(slide)
            throw ImageError(.corrupt, path, "corrupt \(vendor) slide: it claims \(w)x\(h) pixels")
        }
        self.path = path
        self.vendor = vendor
        self.slide = slide
        width = Int(w)
        height = Int(h)
        let colour = openslide_get_property_value(slide, OPENSLIDE_PROPERTY_NAME_BACKGROUND_COLOR).flatMap { UInt32(String(cString: $0), radix: 16) } ?? 0xFF_FFFF
        background = (colour >> 16 & 0xFF, colour >> 8 & 0xFF, colour & 0xFF)
    }

    deinit { openslide_close(slide) }

    /// The region as RGB, transparent pixels composited over the background; `ImageError` when
    /// the slide's data for it is damaged (OpenSlide's error is sticky: every later read fails).
    public func read(x: Int, y: Int, width regionWidth: Int, height regionHeight: Int) throws -> RGBImage {
        try checkRegion(x: x, y: y, width: regionWidth, height: regionHeight, of: width, height, path: path)
        var argb = [UInt32](repeating: 0, count: regionWidth * regionHeight)
        openslide_read_region(slide, &argb, Int64(x), Int64(y), 0, Int64(regionWidth), Int64(regionHeight))
        if let error = openslide_get_error(slide) {
            throw ImageError(.corrupt, path, "corrupt \(vendor) slide: \(String(cString: error))")
        }
        // Premultiplied ARGB over the background: c + background * (255 - a) / 255.
        let (r, g, b) = background
        var pixels = [UInt8](repeating: 0, count: regionWidth * regionHeight * 3)
        for i in argb.indices {
            let pixel = argb[i], transparency = 255 - pixel >> 24
            pixels[3 * i] = UInt8(min(255, (pixel >> 16 & 0xFF) + (r * transparency + 127) / 255))
            pixels[3 * i + 1] = UInt8(min(255, (pixel >> 8 & 0xFF) + (g * transparency + 127) / 255))
            pixels[3 * i + 2] = UInt8(min(255, (pixel & 0xFF) + (b * transparency + 127) / 255))
        }
        return try RGBImage(width: regionWidth, height: regionHeight, pixels: pixels)
    }
}
