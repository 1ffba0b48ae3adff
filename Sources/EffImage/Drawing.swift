import CFreeType
import Foundation

/// An RGB colour.
public struct RGB: Sendable, Equatable {
    public var r, g, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    /// Black or white, whichever reads better on this colour.
    public var contrastingText: RGB {
        0.299 * Double(r) + 0.587 * Double(g) + 0.114 * Double(b) > 150 ? RGB(0, 0, 0) : RGB(255, 255, 255)
    }

    /// Distinct colours for class indices (the 20-colour palette ultralytics uses).
    public static func forClass(_ index: Int) -> RGB {
        let palette: [UInt32] = [0xFF3838, 0xFF9D97, 0xFF701F, 0xFFB21D, 0xCFD231, 0x48F90A, 0x92CC17, 0x3DDB86, 0x1A9334, 0x00D4BB,
                                 0x2C99A8, 0x00C2FF, 0x344593, 0x6473FF, 0x0018EC, 0x8438FF, 0x520085, 0xCB38FF, 0xFF95C8, 0xFF37C7]
        let v = palette[((index % palette.count) + palette.count) % palette.count]
        return RGB(UInt8(v >> 16), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF))
    }
}

extension RGBImage {
    /// Fills a rectangle (clipped to the picture), blending `opacity` of `colour` over it.
    public mutating func fill(x: Int, y: Int, width: Int, height: Int, colour: RGB, opacity: Double = 1) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(self.width, x + width), y1 = min(self.height, y + height)
        guard x0 < x1, y0 < y1 else { return }
        let a = max(0, min(1, opacity))
        let c = [Double(colour.r), Double(colour.g), Double(colour.b)]
        for row in y0..<y1 {
            for col in x0..<x1 {
                let i = (row * self.width + col) * 3
                for k in 0..<3 { pixels[i + k] = UInt8((Double(pixels[i + k]) * (1 - a) + c[k] * a).rounded()) }
            }
        }
    }

    /// Draws a rectangle's outline `lineWidth` pixels wide, inside the box (x1, y1)-(x2, y2).
    public mutating func strokeRectangle(x1: Int, y1: Int, x2: Int, y2: Int, lineWidth: Int, colour: RGB) {
        let w = max(1, lineWidth), width = max(1, x2 - x1), height = max(1, y2 - y1)
        fill(x: x1, y: y1, width: width, height: min(w, height), colour: colour)
        fill(x: x1, y: y2 - w, width: width, height: min(w, height), colour: colour)
        fill(x: x1, y: y1, width: min(w, width), height: height, colour: colour)
        fill(x: x2 - w, y: y1, width: min(w, width), height: height, colour: colour)
    }
}

/// Renders text with FreeType (anti-aliased glyphs from a TrueType font).
public final class TextRenderer: @unchecked Sendable {
    private var library: FT_Library?
    private var face: FT_Face?
    private let lock = NSLock()
    public let fontPath: String

    /// Fonts tried when none is given: `$EFFDENSE_FONT`, then DejaVu Sans from the system packages.
    public static var defaultFontPaths: [String] {
        [ProcessInfo.processInfo.environment["EFFDENSE_FONT"]].compactMap { $0 } + [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
        ]
    }

    /// Opens the first font found (`path`, else the defaults).
    public init(fontPath path: String? = nil) throws {
        let candidates = path.map { [$0] } ?? Self.defaultFontPaths
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ImageError(.unreadable, candidates.first ?? "font", "no TrueType font found for labels (install fonts-dejavu-core or set EFFDENSE_FONT)")
        }
        fontPath = found
        guard FT_Init_FreeType(&library) == 0, let library else {
            throw ImageError(.invalidArgument, found, "FreeType failed to initialise")
        }
        guard FT_New_Face(library, found, 0, &face) == 0, face != nil else {
            FT_Done_FreeType(library)
            throw ImageError(.corrupt, found, "FreeType cannot read this font")
        }
    }

    deinit {
        if let face { FT_Done_Face(face) }
        if let library { FT_Done_FreeType(library) }
    }

    /// Width and height (ascent + descent) of `text` at `pixelSize`.
    public func measure(_ text: String, pixelSize: Int) -> (width: Int, ascent: Int, descent: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard let face, FT_Set_Pixel_Sizes(face, 0, FT_UInt(max(1, pixelSize))) == 0 else { return (0, 0, 0) }
        var width = 0
        for scalar in text.unicodeScalars where FT_Load_Char(face, FT_ULong(scalar.value), FT_Int32(FT_LOAD_DEFAULT)) == 0 {
            width += Int(face.pointee.glyph.pointee.advance.x >> 6)
        }
        let metrics = face.pointee.size.pointee.metrics
        return (width, Int(metrics.ascender >> 6), Int(-metrics.descender >> 6))
    }

    /// Draws `text` with its baseline at `baselineY`, starting at `x`, blending glyph coverage.
    public func draw(_ text: String, into image: inout RGBImage, x: Int, baselineY: Int, pixelSize: Int, colour: RGB) {
        lock.lock()
        defer { lock.unlock() }
        guard let face, FT_Set_Pixel_Sizes(face, 0, FT_UInt(max(1, pixelSize))) == 0 else { return }
        var penX = x
        let c = [Double(colour.r), Double(colour.g), Double(colour.b)]
        for scalar in text.unicodeScalars {
            guard FT_Load_Char(face, FT_ULong(scalar.value), FT_Int32(FT_LOAD_RENDER)) == 0 else { continue }
            let glyph = face.pointee.glyph.pointee
            let bitmap = glyph.bitmap
            if let buffer = bitmap.buffer {
                let left = penX + Int(glyph.bitmap_left), top = baselineY - Int(glyph.bitmap_top)
                for row in 0..<Int(bitmap.rows) {
                    let y = top + row
                    guard y >= 0 && y < image.height else { continue }
                    for col in 0..<Int(bitmap.width) {
                        let px = left + col
                        guard px >= 0 && px < image.width else { continue }
                        let coverage = Double(buffer[row * Int(bitmap.pitch) + col]) / 255
                        guard coverage > 0 else { continue }
                        let i = (y * image.width + px) * 3
                        for k in 0..<3 {
                            image.pixels[i + k] = UInt8((Double(image.pixels[i + k]) * (1 - coverage) + c[k] * coverage).rounded())
                        }
                    }
                }
            }
            penX += Int(glyph.advance.x >> 6)
        }
    }
}

/// A labelled box to draw.
public struct BoxAnnotation: Sendable {
    public var box: [Float]
    public var label: String
    public var colour: RGB
    public init(box: [Float], label: String, colour: RGB) { self.box = box; self.label = label; self.colour = colour }
}

extension RGBImage {
    /// Draws boxes with their labels on filled tags: line width and text size scale with the
    /// picture; a tag sits above its box when there is room, else just inside it, and is kept
    /// within the picture.
    public mutating func annotate(_ annotations: [BoxAnnotation], text: TextRenderer) {
        let lineWidth = max(2, Int((Double(width + height) / 2 * 0.003).rounded()))
        let fontSize = max(12, Int((Double(width + height) / 2 * 0.03).rounded()))
        for a in annotations {
            let x1 = Int(a.box[0].rounded()), y1 = Int(a.box[1].rounded()), x2 = Int(a.box[2].rounded()), y2 = Int(a.box[3].rounded())
            strokeRectangle(x1: x1, y1: y1, x2: x2, y2: y2, lineWidth: lineWidth, colour: a.colour)
        }
        for a in annotations {
            let x1 = Int(a.box[0].rounded()), y1 = Int(a.box[1].rounded())
            let m = text.measure(a.label, pixelSize: fontSize)
            let padding = max(2, fontSize / 6)
            let tagWidth = min(width, m.width + 2 * padding), tagHeight = min(height, m.ascent + m.descent + 2 * padding)
            let tagX = max(0, min(x1, width - tagWidth))
            let tagY = y1 - tagHeight >= 0 ? y1 - tagHeight : max(0, min(y1, height - tagHeight))
            fill(x: tagX, y: tagY, width: tagWidth, height: tagHeight, colour: a.colour)
            text.draw(a.label, into: &self, x: tagX + padding, baselineY: tagY + padding + m.ascent, pixelSize: fontSize,
                      colour: a.colour.contrastingText)
        }
    }
}
