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
