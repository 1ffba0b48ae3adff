import EffDense
import EffImage
import Foundation
import Testing

/// `detect --tile`: on a 4096 x 4096 mosaic, tiles that are exactly its four pictures give those
/// pictures' own detections, moved to the mosaic's coordinates; an object cut by a seam is
/// reported once.
@Suite struct TiledDetectionTests {
    @Test func tiledDetectionsOfAMosaicAreItsPicturesDetections() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var mosaic = [UInt8](repeating: 0, count: 4096 * 4096 * 3)
        var crops: [String] = []
        for (i, name) in ["astronaut.jpg", "coffee.jpg", "chelsea.png", "rocket.jpg"].enumerated() {
            let photo = try ImageCodec.decode(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/\(name)").path)
                .resized(width: 2048, height: 2048, filter: .bilinear)
            let crop = folder.appendingPathComponent("crop\(i).png").path
            try ImageCodec.writePNG(photo, to: crop)
            crops.append(crop)
            let (left, top) = ((i % 2) * 2048, (i / 2) * 2048)
            for y in 0..<2048 {
                mosaic.replaceSubrange(((top + y) * 4096 + left) * 3..<((top + y) * 4096 + left + 2048) * 3,
                                       with: photo.pixels[(y * 2048 * 3)..<((y + 1) * 2048 * 3)])
            }
        }
        let picture = folder.appendingPathComponent("mosaic.png").path
        try ImageCodec.writePNG(pixels: mosaic, width: 4096, height: 4096, format: .rgb, to: picture)
        let flags = ["--weights", DetectCLITests.weights, "--score-threshold", "0.2", "--no-images"]
        let tiled = try CLITests.run(["detect", picture, "--tile", "2048", "--overlap", "0", "--no-full-pass", "--json", "-"] + flags)
        #expect(tiled.status == 0, "\(tiled.stderr)")
        let record = try #require(try JSONSerialization.jsonObject(with: Data(tiled.stdout.utf8)) as? [String: Any])
        #expect(record["tiles"] as? Int == 4)
        let got = try #require(record["detections"] as? [[String: Any]])
        var expected: [[String: Any]] = []
        for (i, crop) in crops.enumerated() {
            let run = try CLITests.run(["detect", crop, "--json", "-"] + flags)
            let line = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            let (left, top) = (Double((i % 2) * 2048), Double((i / 2) * 2048))
            for var detection in try #require(line["detections"] as? [[String: Any]]) {
                let box = try #require(detection["box"] as? [Double])
                detection["box"] = [box[0] + left, box[1] + top, box[2] + left, box[3] + top]
                expected.append(detection)
            }
        }
        // Each picture's detection is found among the tiled ones: same class, score to 1e-5, box
        // to 0.01 px (the tiled boxes are moved in float, the expected ones here in double).
        #expect(!expected.isEmpty)
        #expect(got.count == expected.count, "tiled \(got.count), per picture \(expected.count)")
        var unmatched = got
        var missing = 0
        for detection in expected {
            let box = detection["box"] as? [Double] ?? []
            if let match = unmatched.firstIndex(where: { other in
                other["class_index"] as? Int == detection["class_index"] as? Int
                    && abs((other["score"] as? Double ?? -1) - (detection["score"] as? Double ?? 0)) <= 1e-5
                    && zip(other["box"] as? [Double] ?? [], box).allSatisfy { abs($0 - $1) <= 0.01 }
            }) {
                unmatched.remove(at: match)
            } else {
                missing += 1
            }
        }
        #expect(missing == 0 && unmatched.isEmpty, "\(missing) per-picture detections not found tiled, \(unmatched.count) tiled ones extra")
    }

    @Test func anObjectCutByASeamIsReportedOnce() {
        // Whole in tile 0, its right part in tile 1 (IoU 0.22, but the piece lies inside the whole).
        let whole = Detection(box: [100, 100, 300, 300], score: 0.9, classIndex: 3)
        let piece = Detection(box: [256, 100, 300, 300], score: 0.8, classIndex: 3)
        let otherClass = Detection(box: [256, 100, 300, 300], score: 0.7, classIndex: 4)
        let sameTileNested = Detection(box: [120, 120, 160, 160], score: 0.6, classIndex: 3)
        let merged = TiledDetector.merge([(whole, 0), (piece, 1), (otherClass, 1), (sameTileNested, 0)], threshold: 0.5)
        #expect(merged == [whole, otherClass, sameTileNested])
        // The piece alone in its tile and the whole in the full-picture pass: the same.
        #expect(TiledDetector.merge([(piece, 1), (whole, -1)], threshold: 0.5) == [whole])
    }
}
