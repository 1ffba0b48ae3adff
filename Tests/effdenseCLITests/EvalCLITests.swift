import Foundation
import Testing

/// `effdense eval`: the fixture detector over annotated samples gives the numbers pycocotools
/// gives for effdet's own detections; masks give smp's / NumPy's IoU; bad files end in one line.
@Suite struct EvalCLITests {
    static let fixtures = CLITests.packageRoot.appendingPathComponent("Tests/EffEvalTests/Fixtures/eval")
    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }
    static func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    @Test func detectorOverAnnotatedSamplesScoresAsPycocotoolsOnEffdet() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("report.json").path, results = folder.appendingPathComponent("dets.json").path
        let run = try CLITests.run(["eval", "detect", "--annotations", Self.fixture("samples_gt.json"), "--images", "samples",
                                    "--weights", DetectCLITests.weights, "--save-results", results, "--json", report])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "), "\(run.stdout)")
        #expect(run.stdout.contains("category      id      AP"), "\(run.stdout)")
        let expected = try Self.json(Self.fixture("samples_stats.json"))
        let stats = try #require(try Self.json(report)["stats_list"] as? [Double])
        for (i, (ours, theirs)) in zip(stats, try #require(expected["stats"] as? [Double])).enumerated() {
            #expect(abs(ours - theirs) <= 1e-6, "stat \(i): \(ours) vs effdet + pycocotools \(theirs)")
        }
        #expect(try Self.json(report)["detections"] as? Int == expected["detections"] as? Int)
        // The results file it wrote scores the same (every annotated image, as pycocotools by default).
        let again = try CLITests.run(["eval", "detect", "--annotations", Self.fixture("samples_gt.json"), "--results", results, "--json", "-"])
        #expect(again.status == 0, "\(again.stderr)")
        let rescored = try #require(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        #expect(rescored["stats_list"] as? [Double] == stats)
    }

    @Test func masksScoreAsSmpAndNumPy() throws {
        let run = try CLITests.run(["eval", "segment", "--masks", Self.fixture("seg_gt"), "--predictions", Self.fixture("seg_pred"),
                                    "--num-classes", "6", "--json", "-"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let expected = try Self.json(Self.fixture("seg_metrics.json"))
        #expect(abs((report["miou"] as? Double ?? -1) - (expected["miou_present"] as? Double ?? 0)) <= 1e-9)
        #expect(abs((report["smp_macro_iou"] as? Double ?? -1) - (expected["smp_macro_iou"] as? Double ?? 0)) <= 1e-6)
        #expect(abs((report["pixel_accuracy"] as? Double ?? -1) - (expected["pixel_accuracy"] as? Double ?? 0)) <= 1e-9)
        #expect(report["confusion"] as? [[Int]] == expected["confusion"] as? [[Int]])
        // The table for people.
        let table = try CLITests.run(["eval", "segment", "--masks", Self.fixture("seg_gt"), "--predictions", Self.fixture("seg_pred"), "--num-classes", "6"])
        #expect(table.status == 0 && table.stdout.contains("mIoU ") && table.stdout.contains("class     index      IoU"), "\(table.stdout)")
    }

    /// A segmenter scored against its own masks (written by `effdense segment`) is perfect:
    /// the model path of eval segment pairs pictures and masks and counts every pixel.
    @Test func segmenterAgainstItsOwnMasksScoresOne() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let pictures = folder.appendingPathComponent("pictures"), masks = folder.appendingPathComponent("masks").path
        try FileManager.default.createDirectory(at: pictures, withIntermediateDirectories: true)
        for name in ["chelsea.png", "coffee.jpg"] {
            try FileManager.default.copyItem(atPath: CLITests.packageRoot.appendingPathComponent("samples/\(name)").path,
                                             toPath: pictures.appendingPathComponent(name).path)
        }
        let segment = try CLITests.run(["segment", pictures.path, "--weights", SegmentCLITests.weights, "--out-dir", masks])
        #expect(segment.status == 0, "\(segment.stderr)")
        let run = try CLITests.run(["eval", "segment", "--masks", masks, "--images", pictures.path, "--weights", SegmentCLITests.weights, "--json", "-"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(report["miou"] as? Double == 1.0 && report["pixel_accuracy"] as? Double == 1.0, "\(report)")
        let counted = (report["confusion"] as? [[Int]] ?? []).joined().reduce(0, +)
        #expect(counted == 451 * 300 + 600 * 400, "pixels counted: \(counted)")
    }

    @Test func missingPicturesAreReportedAndBadAnnotationsNamed() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var truth = try Self.json(Self.fixture("samples_gt.json"))
        var images = try #require(truth["images"] as? [[String: Any]])
        images.append(["id": 99, "file_name": "missing.jpg"])
        truth["images"] = images
        let annotations = folder.appendingPathComponent("gt.json").path
        try JSONSerialization.data(withJSONObject: truth).write(to: URL(fileURLWithPath: annotations))
        let run = try CLITests.run(["eval", "detect", "--annotations", annotations, "--images", "samples", "--weights", DetectCLITests.weights])
        #expect(run.status == 1)
        #expect(run.stderr.contains("samples/missing.jpg") && run.stderr.contains("1 picture left out of the metrics"), "\(run.stderr)")
        #expect(run.stdout.contains("Average Precision"), "the metrics of the others are still printed")
        // A field missing: one line naming it.
        images[0].removeValue(forKey: "file_name")
        truth["images"] = images
        try JSONSerialization.data(withJSONObject: truth).write(to: URL(fileURLWithPath: annotations))
        let broken = try CLITests.run(["eval", "detect", "--annotations", annotations, "--images", "samples", "--weights", DetectCLITests.weights])
        CLITests.expectOneLineError(broken, naming: annotations)
        #expect(broken.stderr.contains("images[0]: missing field 'file_name'"), "\(broken.stderr)")
    }
}
