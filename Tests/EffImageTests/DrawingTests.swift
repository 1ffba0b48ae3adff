import EffImage
import Foundation
import Testing

/// Boxes, tags and FreeType text on a picture.
@Suite struct DrawingTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func boxesAndTagsAreDrawnInsideThePicture() throws {
        let original = try ImageCodec.decode(contentsOf: Self.root.appendingPathComponent("samples/astronaut.jpg").path)
        var image = original
        let annotations = [
            BoxAnnotation(box: [60, 40, 300, 480], label: "person 0.93", colour: RGB.forClass(0)),
            BoxAnnotation(box: [0, 0, 120, 90], label: "airplane 0.71", colour: RGB.forClass(4)),       // top-left corner
            BoxAnnotation(box: [420, 430, 512, 512], label: "stop sign 0.55", colour: RGB.forClass(12)), // bottom-right
            BoxAnnotation(box: [330, 200, 470, 330], label: "tennis racket 0.48", colour: RGB.forClass(42)),
        ]
        image.annotate(annotations, text: try TextRenderer())
        try ImageCodec.writePNG(image, to: FileManager.default.temporaryDirectory.appendingPathComponent("effdense-annotate.png").path)
        func pixel(_ x: Int, _ y: Int) -> RGB {
            let i = (y * image.width + x) * 3
            return RGB(image.pixels[i], image.pixels[i + 1], image.pixels[i + 2])
        }
        // Box edges carry the class colour; the inside of a box is untouched.
        #expect(pixel(60, 300) == RGB.forClass(0) && pixel(299, 300) == RGB.forClass(0))
        #expect(pixel(400, 329) == RGB.forClass(42))
        let inside = (300 * image.width + 180) * 3
        #expect(Array(image.pixels[inside..<(inside + 3)]) == Array(original.pixels[inside..<(inside + 3)]))
        // The corner box's tag goes inside it (no room above) and holds dark text on a light tag
        // or light text on a dark one: some pixels differ from the tag colour.
        let tagColour = RGB.forClass(4)
        let tagPixels = (2..<18).flatMap { y in (2..<60).map { pixel($0, y) } }
        #expect(tagPixels.filter { $0 == tagColour }.count > tagPixels.count / 3)
        #expect(tagPixels.contains { $0 != tagColour })
        // Distinct colours for the first 20 classes.
        #expect(Set((0..<20).map { RGB.forClass($0) }.map { "\($0.r),\($0.g),\($0.b)" }).count == 20)
    }

    @Test func measuringGrowsWithTextAndSize() throws {
        let text = try TextRenderer()
        let short = text.measure("cat", pixelSize: 16), long = text.measure("cat and dog", pixelSize: 16)
        #expect(short.width > 0 && long.width > short.width)
        #expect(text.measure("cat", pixelSize: 32).width > short.width)
        #expect(throws: ImageError.self) { try TextRenderer(fontPath: "/no/such/font.ttf") }
    }
}

@Suite struct AnnotationLayoutTests {
    /// Two boxes at one place: the better one's tag is drawn (on top, in its colour), the weaker
    /// one's, which could only cover it, is left out; the same whatever the order given.
    @Test func bestTagIsOnTopAndNotCovered() throws {
        let text = try TextRenderer()
        let strong = RGB(200, 30, 30), weak = RGB(30, 30, 200)
        for order in [[0, 1], [1, 0]] {
            let boxes = [BoxAnnotation(box: [40, 60, 200, 180], label: "strong 0.90", colour: strong, score: 0.9),
                         BoxAnnotation(box: [40, 60, 200, 180], label: "weak 0.50", colour: weak, score: 0.5)]
            var image = RGBImage(width: 240, height: 200, fill: (255, 255, 255))
            image.annotate(order.map { boxes[$0] }, text: text)
            // Just above the box's top-left corner is the strong tag's fill.
            let i = (55 * image.width + 42) * 3
            #expect(RGB(image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]) == strong, "order \(order)")
            // No weak-coloured tag anywhere above the box.
            let weakPixels = (0..<(60 * image.width)).filter { RGB(image.pixels[3 * $0], image.pixels[3 * $0 + 1], image.pixels[3 * $0 + 2]) == weak }
            #expect(weakPixels.isEmpty)
        }
        var thin = RGBImage(width: 100, height: 100, fill: (255, 255, 255))
        thin.annotate([BoxAnnotation(box: [10, 10, 90, 90], label: "x", colour: strong, score: 1)], text: text,
                      style: AnnotationStyle(lineWidth: 1, showLabels: false))
        #expect(thin.pixels[(50 * 100 + 10) * 3] == 200 && thin.pixels[(50 * 100 + 11) * 3] == 255, "a 1-pixel line")
        #expect(thin.pixels[(5 * 100 + 12) * 3] == 255, "no tag with showLabels false")
    }

    /// Every class its own colour: the first 100 indices all distinct and well apart from their
    /// neighbours; COCO's cat (16) and cell phone (76) no longer alike.
    @Test func classColoursAreDistinct() {
        let colours = (0..<100).map(RGB.forClass)
        #expect(Set(colours.map { [$0.r, $0.g, $0.b] }).count == 100)
        func distance(_ a: RGB, _ b: RGB) -> Int { abs(Int(a.r) - Int(b.r)) + abs(Int(a.g) - Int(b.g)) + abs(Int(a.b) - Int(b.b)) }
        #expect(zip(colours, colours.dropFirst()).allSatisfy { distance($0, $1) > 60 })
        #expect(distance(RGB.forClass(16), RGB.forClass(76)) > 60)
    }
}
