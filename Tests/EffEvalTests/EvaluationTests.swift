import EffEval
import EffImage
import Foundation
import Testing

/// COCO metrics and segmentation IoU against pycocotools, faster-coco-eval and smp on the
/// fixtures of scripts/make_eval_fixtures.py.
@Suite struct EvaluationTests {
    static let folder = Bundle.module.url(forResource: "Fixtures/eval", withExtension: nil)!
    static func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
    static func expected() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("coco_stats.json"))) as? [String: Any])
    }

    @Test func twelveStatsEqualPycocotools() throws {
        let truth = try COCOGroundTruth(contentsOf: Self.path("coco_gt.json"))
        let detections = try COCODetection.read(contentsOf: Self.path("coco_dets.json"), groundTruth: truth)
        let evaluation = COCOEvaluation(groundTruth: truth, detections: detections)
        let expected = try Self.expected()
        let reference = try #require(expected["stats"] as? [Double])
        #expect(evaluation.stats.count == 12)
        for (i, (ours, theirs)) in zip(evaluation.stats, reference).enumerated() {
            #expect(abs(ours - theirs) <= 1e-6, "stat \(i): \(ours) vs pycocotools \(theirs)")
        }
        if let faster = expected["faster_coco_eval_stats"] as? [Double] {
            for (i, (ours, theirs)) in zip(evaluation.stats, faster).enumerated() {
                #expect(abs(ours - theirs) <= 1e-6, "stat \(i): \(ours) vs faster-coco-eval \(theirs)")
            }
        }
        let perClass = try #require(expected["per_class_ap"] as? [String: Double])
        for row in evaluation.perCategoryAP {
            let theirs = try #require(perClass[String(row.categoryID)])
            #expect(abs(row.ap - theirs) <= 1e-6, "category \(row.categoryID): \(row.ap) vs \(theirs)")
        }
        #expect(evaluation.summary[0] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = " + String(format: "%0.3f", reference[0]))
        #expect(evaluation.summary[6].hasPrefix(" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = "))
        // Only some images, as effdet's validate.py evaluates the images it ran.
        let ids = try #require(expected["subset_image_ids"] as? [Int])
        let subset = COCOEvaluation(groundTruth: truth, detections: detections, imageIDs: ids)
        for (i, (ours, theirs)) in zip(subset.stats, try #require(expected["subset_stats"] as? [Double])).enumerated() {
            #expect(abs(ours - theirs) <= 1e-6, "subset stat \(i): \(ours) vs \(theirs)")
        }
    }

    @Test func malformedAnnotationsNameTheField() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases: [(String, String)] = [
            (#"{"images": [], "categories": []}"#, "missing field 'annotations'"),
            (#"{"images": [{"id": 1}], "annotations": [], "categories": []}"#, "images[0]: missing field 'file_name'"),
            (#"{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]}"#, "annotations[0]: missing field 'area'"),
            (#"{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1}], "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1}]}"#, "image_id 2 is not among the images"),
            (#"{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "area": 1}]}"#, "'bbox' is not four numbers"),
            ("not json", "not valid JSON"),
        ]
        for (i, (text, message)) in cases.enumerated() {
            let file = folder.appendingPathComponent("gt\(i).json").path
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            #expect(throws: EvaluationInputError.self) { try COCOGroundTruth(contentsOf: file) }
            do { _ = try COCOGroundTruth(contentsOf: file) } catch { #expect("\(error)".contains(message), "\(error)") }
        }
        let truth = try COCOGroundTruth(contentsOf: Self.path("coco_gt.json"))
        let results = folder.appendingPathComponent("dets.json").path
        try #"[{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]"#.write(toFile: results, atomically: true, encoding: .utf8)
        do {
            _ = try COCODetection.read(contentsOf: results, groundTruth: truth)
            Issue.record("an unknown image id was accepted")
        } catch { #expect("\(error)".contains("image_id 999 is not an image of the annotations"), "\(error)") }
    }

    @Test func segmentationMetricsEqualSmpAndNumPy() throws {
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("seg_metrics.json"))) as? [String: Any])
        var metrics = SegmentationMetrics(classCount: try #require(expected["num_classes"] as? Int), ignoreIndex: 255)
        for i in 0..<4 {
            let truth = try ImageCodec.decodeIndexed(contentsOf: Self.path("seg_gt/m\(i).png"))
            let prediction = try ImageCodec.decodeIndexed(contentsOf: Self.path("seg_pred/m\(i).png"))
            metrics.add(prediction: prediction.indices, truth: truth.indices)
        }
        #expect(metrics.confusion == (expected["confusion"] as? [[Int]]))
        let smp = try #require(expected["per_class_iou_smp"] as? [Any])
        let numpy = try #require(expected["per_class_iou_numpy"] as? [Any])
        for (c, ours) in metrics.perClassIoU.enumerated() {
            #expect((ours == nil) == (smp[c] is NSNull), "class \(c)")
            if let ours, let theirs = smp[c] as? Double, let exact = numpy[c] as? Double {
                #expect(abs(ours - exact) <= 1e-9, "class \(c): \(ours) vs NumPy \(exact)")
                #expect(abs(ours - theirs) <= 1e-6, "class \(c): \(ours) vs smp (float32) \(theirs)")
            }
        }
        #expect(abs(metrics.meanIoU - (expected["miou_present"] as? Double ?? -1)) <= 1e-9)
        #expect(abs(metrics.smpMacroIoU - (expected["smp_macro_iou"] as? Double ?? -1)) <= 1e-6)
        #expect(abs(metrics.pixelAccuracy - (expected["pixel_accuracy"] as? Double ?? -1)) <= 1e-9)
    }
}
