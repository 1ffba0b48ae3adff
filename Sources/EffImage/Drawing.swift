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

    /// A colour per class index, every index its own hue: hues step by the golden ratio of the
    /// circle (neighbouring indices far apart, no two of the first hundreds alike, unlike a
    /// 20-colour palette where cat and cell phone share purple), vivid (saturation 0.85) and
    /// in three brightness bands so hues that are close still differ in lightness.
    public static func forClass(_ index: Int) -> RGB {
        let i = Double(index < 0 ? -index : index)
        let hue = (i * 0.618033988749895 + 0.05).truncatingRemainder(dividingBy: 1) * 6
        let value = [1.0, 0.78, 0.9][Int(i) % 3], saturation = 0.85
        let sector = Int(hue), f = hue - Double(sector)
        let p = value * (1 - saturation), q = value * (1 - saturation * f), t = value * (1 - saturation * (1 - f))
        let (r, g, b): (Double, Double, Double)
        switch sector % 6 {
        case 0: (r, g, b) = (value, t, p)
        case 1: (r, g, b) = (q, value, p)
        case 2: (r, g, b) = (p, value, t)
        case 3: (r, g, b) = (p, q, value)
        case 4: (r, g, b) = (t, p, value)
        default: (r, g, b) = (value, p, q)
        }
        return RGB(UInt8((r * 255).rounded()), UInt8((g * 255).rounded()), UInt8((b * 255).rounded()))
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
    /// Higher scores are drawn later (on top) and get the first choice of where their tag goes.
    public var score: Float
    public init(box: [Float], label: String, colour: RGB, score: Float = 0) {
        self.box = box; self.label = label; self.colour = colour; self.score = score
    }
}

/// How boxes are drawn (ultralytics' `line_width`, `show_labels`).
public struct AnnotationStyle: Sendable, Equatable {
    /// Box line width in pixels (nil: scaled to the picture, at least 2).
    public var lineWidth: Int?
    /// Draw the label tags.
    public var showLabels = true
    public init(lineWidth: Int? = nil, showLabels: Bool = true) { self.lineWidth = lineWidth; self.showLabels = showLabels }
}

extension RGBImage {
    /// Draws boxes with their labels on filled tags: line width and text size scale with the
    /// picture. Boxes are drawn weakest first, so the best is on top. Tags are placed best first:
    /// above the box, else inside its top, else below it, kept within the picture; a tag that
    /// would cover a better one's tag wherever it goes is left out (its box stays).
    public mutating func annotate(_ annotations: [BoxAnnotation], text: TextRenderer, style: AnnotationStyle = AnnotationStyle()) {
        let lineWidth = style.lineWidth ?? max(2, Int((Double(width + height) / 2 * 0.003).rounded()))
        let fontSize = max(12, Int((Double(width + height) / 2 * 0.03).rounded()))
        let weakestFirst = annotations.sorted { $0.score < $1.score }
        for a in weakestFirst {
            let x1 = Int(a.box[0].rounded()), y1 = Int(a.box[1].rounded()), x2 = Int(a.box[2].rounded()), y2 = Int(a.box[3].rounded())
            strokeRectangle(x1: x1, y1: y1, x2: x2, y2: y2, lineWidth: lineWidth, colour: a.colour)
        }
        guard style.showLabels else { return }
        struct Tag { let x, y, width, height: Int; let annotation: BoxAnnotation; let ascent, padding: Int }
        func overlaps(_ a: Tag, _ b: Tag) -> Bool {
            a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
        }
        var placed: [Tag] = []
        for a in weakestFirst.reversed() {
            let x1 = Int(a.box[0].rounded()), y1 = Int(a.box[1].rounded()), y2 = Int(a.box[3].rounded())
            let m = text.measure(a.label, pixelSize: fontSize)
            let padding = max(2, fontSize / 6)
            let tagWidth = min(width, m.width + 2 * padding), tagHeight = min(height, m.ascent + m.descent + 2 * padding)
            let tagX = max(0, min(x1, width - tagWidth))
            let candidates = [y1 - tagHeight, y1, y2].filter { $0 >= 0 && $0 + tagHeight <= height } + [max(0, min(y1, height - tagHeight))]
            let tags = candidates.map { Tag(x: tagX, y: $0, width: tagWidth, height: tagHeight, annotation: a, ascent: m.ascent, padding: padding) }
            if let free = tags.first(where: { tag in !placed.contains { overlaps($0, tag) } }) { placed.append(free) }
        }
        for tag in placed.reversed() {
            fill(x: tag.x, y: tag.y, width: tag.width, height: tag.height, colour: tag.annotation.colour)
            text.draw(tag.annotation.label, into: &self, x: tag.x + tag.padding, baselineY: tag.y + tag.padding + tag.ascent,
                      pixelSize: fontSize, colour: tag.annotation.colour.contrastingText)
        }
    }
}
