import EffDense
import EffCore
import EffImage
import EffWeights
import Foundation
import Testing

/// Runs the built `effdense` binary the way a user does and checks exit status, stdout, stderr
/// and the files it writes.
@Suite struct CLITests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let realLite0 = packageRoot.appendingPathComponent("weights/efficientnet-lite0-57934424.pth").path

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    /// The effdense executable next to this test bundle.
    static var binary: URL {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var folder = testBinary.deletingLastPathComponent()
        while folder.path != "/" && !FileManager.default.fileExists(atPath: folder.appendingPathComponent("effdense").path) {
            folder = folder.deletingLastPathComponent()
        }
        return folder.appendingPathComponent("effdense")
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil) throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdin = Pipe()
        if input != nil { process.standardInput = stdin }
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(input)
            try stdin.fileHandleForWriting.close()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A failure: exit 1, one line on stderr naming `file`.
    static func expectOneLineError(_ result: Result, naming file: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 1, "exit status \(result.status); stderr: \(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr is not one line: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("effdense: \(file)"), "stderr does not name \(file): \(result.stderr)", sourceLocation: sourceLocation)
    }

    @Test func inspectListsTheRealLite0Checkpoint() throws {
        #expect(FileManager.default.fileExists(atPath: Self.realLite0), "run scripts/fetch-weights.sh first")
        let table = try Self.run(["weights", "inspect", Self.realLite0])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("296 tensors"))
        #expect(table.stdout.contains("key layout: lukemelas EfficientNet"))
        #expect(table.stdout.contains("_blocks.15._project_conv.weight"))
        let json = try Self.run(["weights", "inspect", "--json", Self.realLite0])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["tensors"] as? [Any])?.count == 296)
        #expect(object["tensors_count"] as? Int == 296)
        #expect(object["format"] as? String == "torch legacy")
    }

    @Test func badCheckpointsGiveOneLineAndStatusOne() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let real = try Data(contentsOf: URL(fileURLWithPath: Self.realLite0))
        let truncated = folder.appendingPathComponent("truncated.pth").path
        try real.prefix(real.count / 2).write(to: URL(fileURLWithPath: truncated))
        Self.expectOneLineError(try Self.run(["weights", "inspect", truncated]), naming: truncated)
        Self.expectOneLineError(try Self.run(["weights", "inspect", "/no/such.pth"]), naming: "/no/such.pth")
    }

    @Test func convertWritesAReadableSafetensorsFile() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("lite0.safetensors").path
        let result = try Self.run(["weights", "convert", Self.realLite0, output, "--fp16"])
        #expect(result.status == 0, "\(result.stderr)")
        let converted = try WeightStore(contentsOf: output)
        let original = try WeightStore(contentsOf: Self.realLite0)
        #expect(converted.names.count == 296 && converted.format == .safetensors)
        #expect(converted.info("_fc.weight")?.dtype == .float16)
        #expect(try converted.tensor("_fc.bias").scalars == original.tensor("_fc.bias").scalars.map { Float(Float16($0)) })
    }

    @Test func pullRejectsAFileWhoseHashDoesNotMatchItsName() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let mirror = folder.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror, withIntermediateDirectories: true)
        try Data("not the real checkpoint".utf8).write(to: mirror.appendingPathComponent("tf_efficientdet_d0_34-f153e0cf.pth"))
        let result = try Self.run(["weights", "pull", "tf_efficientdet_d0"],
                                  environment: ["EFFDENSE_WEIGHTS_MIRROR": mirror.absoluteString, "XDG_CACHE_HOME": folder.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("does not start with f153e0cf"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("effdense/tf_efficientdet_d0_34-f153e0cf.pth").path))
    }

    @Test func pullReusesTheCacheAndNamesWhatIsMissing() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let mirror = folder.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror, withIntermediateDirectories: true)
        let environment = ["EFFDENSE_WEIGHTS_MIRROR": mirror.absoluteString, "XDG_CACHE_HOME": folder.path]
        let missing = try Self.run(["weights", "pull", "efficientdet_d1"], environment: environment)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("efficientdet_d1-bb7e98fe.pth") && missing.stderr.contains("--weights FILE"), "\(missing.stderr)")
        // Already in the cache: nothing is fetched, the path is printed.
        let cached = folder.appendingPathComponent("effdense/efficientdet_d1-bb7e98fe.pth")
        try FileManager.default.createDirectory(at: cached.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("cached".utf8).write(to: cached)
        let reused = try Self.run(["weights", "pull", "efficientdet_d1"], environment: environment)
        #expect(reused.status == 0 && reused.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == cached.path, "\(reused.stderr)")
    }

    @Test func badImagesAndFlagsGiveOneLineAndStatusOne() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let empty = folder.appendingPathComponent("empty.png").path
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        let output = folder.appendingPathComponent("out.jsonl").path
        Self.expectOneLineError(try Self.run(["classify", empty, "--json", output]), naming: empty)
        #expect(!FileManager.default.fileExists(atPath: output))
        let truncated = folder.appendingPathComponent("coffee.jpg").path
        let jpeg = try Data(contentsOf: Self.packageRoot.appendingPathComponent("samples/coffee.jpg"))
        try jpeg.prefix(jpeg.count / 2).write(to: URL(fileURLWithPath: truncated))
        Self.expectOneLineError(try Self.run(["classify", truncated]), naming: truncated)
        let flag = try Self.run(["classify", "samples/chelsea.png", "--threads", "0"])
        #expect(flag.status == 1 && flag.stderr.split(separator: "\n").count == 1, "\(flag.stderr)")
        let unknown = try Self.run(["classify", "samples/chelsea.png", "--no-such-flag"])
        #expect(unknown.status == 1 && unknown.stderr.contains("--no-such-flag"))
    }
}

@Suite struct ClassifyCLITests {
    @Test func classifyWritesJSONLinesWithTheRealModel() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("out.jsonl").path
        let result = try CLITests.run(["classify", "samples/coffee.jpg", "samples/chelsea.png", "--json", output, "--top", "3"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["image"] as? String == "samples/coffee.jpg")
        #expect(first["model"] as? String == "tf_efficientnet_lite0")
        let predictions = try #require(first["predictions"] as? [[String: Any]])
        #expect(predictions.count == 3)
        #expect(predictions.first?["label"] as? String == "espresso" && predictions.first?["class_index"] as? Int == 967)
        let stdout = try CLITests.run(["classify", "samples/chelsea.png", "--json", "-"])
        #expect(stdout.stdout.split(separator: "\n").count == 1 && stdout.stdout.contains("\"tiger cat\""))
    }

    /// `--precision bf16` end to end: bench says which precision ran (bf16 only on a CPU with
    /// AVX512_BF16, else float32 with a note), and classify keeps the real Lite0's answer.
    @Test func precisionFlagRunsBFloat16WhereTheCPUHasIt() throws {
        let bench = try CLITests.run(["bench", "--model", "tf_efficientnet_lite0", "--runs", "2", "--precision", "bf16", "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any])
        #expect(report["precision"] as? String == (Precision.bfloat16Available ? "bf16" : "f32"))
        #expect(bench.stderr.contains("no AVX512_BF16") == !Precision.bfloat16Available, "\(bench.stderr)")
        let classify = try CLITests.run(["classify", "samples/coffee.jpg", "--json", "-", "--top", "1", "--precision", "bf16"])
        #expect(classify.status == 0, "\(classify.stderr)")
        #expect(classify.stdout.contains("\"espresso\""), "\(classify.stdout)")
        let bad = try CLITests.run(["classify", "samples/coffee.jpg", "--precision", "fp8"])
        CLITests.expectOneLineError(bad, naming: "The value 'fp8' is invalid for '--precision")
    }

    /// `bench --profile` times every operator once per forward pass: Lite0's stem (a 3x3
    /// convolution with stride 2, once a pass), its first expanded block as one fused step, and
    /// the 7x7 stage's four 192 → 1152 expansions, each fused with its depthwise convolution
    /// (three 5x5, one 3x3); the text form lists them too.
    @Test func benchProfileListsTheOperators() throws {
        let bench = try CLITests.run(["bench", "--model", "tf_efficientnet_lite0", "--runs", "2", "--profile", "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any])
        let profile = try #require(report["profile"] as? [[String: Any]])
        func entry(_ name: String, _ detail: String) -> [String: Any]? {
            profile.first { $0["operator"] as? String == name && $0["detail"] as? String == detail }
        }
        let stem = try #require(entry("conv 3x3", "3->32 s2 @224x224"), "\(profile)")
        #expect(stem["calls_per_run"] as? Double == 1 && (stem["ms_per_run"] as? Double ?? 0) > 0)
        #expect(entry("conv 1x1+depthwise 3x3+conv 1x1", "16->96->24 s2 @112x112")?["calls_per_run"] as? Double == 1, "\(profile)")
        #expect(entry("conv 1x1+depthwise 5x5", "192->1152 @7x7")?["calls_per_run"] as? Double == 3, "\(profile)")
        #expect(entry("conv 1x1+depthwise 3x3", "192->1152 @7x7")?["calls_per_run"] as? Double == 1, "\(profile)")
        let text = try CLITests.run(["bench", "--model", "tf_efficientnet_lite0", "--runs", "2", "--profile"])
        #expect(text.status == 0 && text.stdout.contains("operators, ms per forward pass") && text.stdout.contains("conv 3x3  3->32 s2 @224x224"),
                "\(text.stdout)")
    }

    @Test func wrongWeightsNameWhatTheFileHolds() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Another model's checkpoint: Lite0 weights for B0 — the error says what the file holds.
        let other = try CLITests.run(["classify", "samples/coffee.jpg", "--model", "tf_efficientnet_b0", "--weights", CLITests.realLite0])
        CLITests.expectOneLineError(other, naming: CLITests.realLite0)
        #expect(other.stderr.contains("holds the classifier efficientnet-lite0"), "\(other.stderr)")
        // A truncated checkpoint.
        let real = try Data(contentsOf: URL(fileURLWithPath: CLITests.realLite0))
        let truncated = folder.appendingPathComponent("lite0.pth").path
        try real.prefix(real.count - 1000).write(to: URL(fileURLWithPath: truncated))
        CLITests.expectOneLineError(try CLITests.run(["classify", "samples/coffee.jpg", "--weights", truncated]), naming: truncated)
        // No weights at all for a model.
        let none = try CLITests.run(["classify", "samples/coffee.jpg", "--model", "tf_efficientnet_b3"],
                                    environment: ["XDG_CACHE_HOME": folder.path])
        #expect(none.status == 1 && none.stderr.contains("--weights FILE"), "\(none.stderr)")
    }
}

@Suite struct DetectCLITests {
    static let weights = CLITests.packageRoot.appendingPathComponent("Tests/EffDenseTests/Fixtures/detection/tf_efficientdet_d0.pth").path

    @Test func detectWritesJSONAndAnAnnotatedPNGWithBoxesWhereTheJSONSays() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let png = folder.appendingPathComponent("coffee.png").path, json = folder.appendingPathComponent("out.jsonl").path
        let result = try CLITests.run(["detect", "samples/coffee.jpg", "--weights", Self.weights, "-o", png, "--json", json,
                                       "--max-detections", "1", "--score-threshold", "0.5"])
        #expect(result.status == 0, "\(result.stderr)")
        let line = try String(contentsOfFile: json, encoding: .utf8)
        #expect(line.split(separator: "\n").count == 1)
        let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(record["image"] as? String == "samples/coffee.jpg" && record["model"] as? String == "tf_efficientdet_d0")
        #expect(record["width"] as? Int == 600 && record["height"] as? Int == 400)
        let detections = try #require(record["detections"] as? [[String: Any]])
        #expect(detections.count == 1)
        let detection = try #require(detections.first)
        let box = try #require(detection["box"] as? [Double])
        let classIndex = try #require(detection["class_index"] as? Int)
        #expect(box.count == 4 && box[0] >= 0 && box[1] >= 0 && box[2] <= 600 && box[3] <= 400 && box[0] < box[2])
        #expect(detection["label"] as? String == (try ProjectFiles.labels(CLITests.packageRoot.appendingPathComponent("configs/coco90_classes.txt").path))[classIndex])
        #expect((detection["score"] as? Double ?? 0) >= 0.5)

        // The PNG: valid, the input's size, the box drawn in its class colour where the JSON says.
        let annotated = try ImageCodec.decode(contentsOf: png)
        let original = try ImageCodec.decode(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/coffee.jpg").path)
        #expect(annotated.width == 600 && annotated.height == 400)
        func pixel(_ image: RGBImage, _ x: Int, _ y: Int) -> [UInt8] { let i = (y * image.width + x) * 3; return Array(image.pixels[i..<(i + 3)]) }
        let colour = RGB.forClass(classIndex)
        let (x1, x2) = (Int(box[0].rounded()), Int(box[2].rounded()))
        let midY = Int(((box[1] + box[3]) / 2).rounded())
        #expect(pixel(annotated, x1, midY) == [colour.r, colour.g, colour.b], "left edge at (\(x1), \(midY))")
        #expect(pixel(annotated, x2 - 1, midY) == [colour.r, colour.g, colour.b], "right edge at (\(x2 - 1), \(midY))")
        let insideX = (x1 + x2) / 2
        #expect(pixel(annotated, insideX, midY) == pixel(original, insideX, midY), "inside the box is untouched")
        #expect(pixel(annotated, min(599, x2 + 20), midY) == pixel(original, min(599, x2 + 20), midY), "outside the box is untouched")
    }

    @Test func defaultOutputGoesBesideTheInputAndNeverOverwritesIt() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("photo.png").path
        try FileManager.default.copyItem(atPath: CLITests.packageRoot.appendingPathComponent("samples/chelsea.png").path, toPath: input)
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        let result = try CLITests.run(["detect", input, "--weights", Self.weights, "--max-detections", "3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("photo.detections.png").path))
        let refused = try CLITests.run(["detect", input, "--weights", Self.weights, "-o", input])
        CLITests.expectOneLineError(refused, naming: input)
        #expect(try Data(contentsOf: URL(fileURLWithPath: input)) == before)
    }

    @Test func missingWeightsAndBadArgumentsGiveOneLine() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Not cached and not fetchable (an empty mirror folder: no network involved).
        let none = try CLITests.run(["detect", "samples/coffee.jpg"],
                                    environment: ["XDG_CACHE_HOME": folder.path, "EFFDENSE_WEIGHTS_MIRROR": folder.absoluteString])
        #expect(none.status == 1 && none.stderr.contains("--weights FILE") && none.stderr.split(separator: "\n").count == 1, "\(none.stderr)")
        #expect(none.stderr.contains("tf_efficientdet_d0_34-f153e0cf.pth"), "\(none.stderr)")
        let wrong = try CLITests.run(["detect", "samples/coffee.jpg", "--weights", CLITests.realLite0])
        CLITests.expectOneLineError(wrong, naming: CLITests.realLite0)
        let classes = try CLITests.run(["detect", "samples/coffee.jpg", "--weights", Self.weights, "--classes", "person,unicorn"])
        #expect(classes.status == 1 && classes.stderr.contains("unicorn"))
        let threshold = try CLITests.run(["detect", "samples/coffee.jpg", "--score-threshold", "2"])
        #expect(threshold.status == 1)
        let config = folder.appendingPathComponent("bad.yaml").path
        try "name: x\nbackbone: tf_efficientnet_b0\n".write(toFile: config, atomically: true, encoding: .utf8)
        CLITests.expectOneLineError(try CLITests.run(["detect", "samples/coffee.jpg", "--config", config, "--weights", Self.weights]), naming: config)
    }
}

@Suite struct SegmentCLITests {
    static let fixtures = CLITests.packageRoot.appendingPathComponent("Tests/EffDenseTests/Fixtures/segmentation")
    static let weights = fixtures.appendingPathComponent("deeplabv3plus_efficientnet_b0.pth").path

    @Test func segmentWritesAPaletteMaskMatchingTheReference() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = Self.fixtures.appendingPathComponent("chelsea_150x100.png").path
        let mask = folder.appendingPathComponent("mask.png").path, overlay = folder.appendingPathComponent("overlay.png").path
        let json = folder.appendingPathComponent("out.jsonl").path
        let result = try CLITests.run(["segment", input, "--weights", Self.weights, "-o", mask, "--overlay", overlay, "--json", json])
        #expect(result.status == 0, "\(result.stderr)")

        // A palette PNG of the input's size whose colours are VOC palette entries 0..<21.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: mask))
        #expect(bytes[25] == 3 && bytes[24] == 8, "colour type 3 (palette), 8 bits")
        let decoded = try ImageCodec.decode(bytes, source: mask)
        #expect(decoded.width == 150 && decoded.height == 100)
        var paletteIndex: [String: Int] = [:]
        for (i, c) in Segmenter.vocPalette.enumerated() { paletteIndex["\(c.0),\(c.1),\(c.2)"] = i }
        let indices = (0..<(150 * 100)).map { paletteIndex["\(decoded.pixels[3 * $0]),\(decoded.pixels[3 * $0 + 1]),\(decoded.pixels[3 * $0 + 2])"] ?? -1 }
        #expect(indices.allSatisfy { (0..<21).contains($0) })

        // The same classes as smp's logits wherever their top two differ by more than 1e-3.
        let io = try WeightStore(contentsOf: Self.fixtures.appendingPathComponent("deeplabv3plus_efficientnet_b0.io.safetensors").path)
        let logits = try io.tensor("os16.logits_150x100")  // NCHW
        let plane = 100 * 150
        var differing = 0, compared = 0
        logits.withUnsafeBufferPointer { v in
            for pixel in 0..<plane {
                let scores = (0..<21).map { v[$0 * plane + pixel] }
                let sorted = scores.sorted(by: >)
                guard sorted[0] - sorted[1] > 1e-3, let best = scores.firstIndex(of: sorted[0]) else { continue }
                compared += 1
                if indices[pixel] != best { differing += 1 }
            }
        }
        #expect(differing == 0 && compared > plane * 9 / 10, "\(differing) of \(compared) pixels differ")

        // JSON: the classes present with pixel counts adding up to the picture.
        let record = try #require(try JSONSerialization.jsonObject(with: Data(String(contentsOfFile: json, encoding: .utf8).utf8)) as? [String: Any])
        #expect(record["mask"] as? String == mask && record["width"] as? Int == 150 && record["height"] as? Int == 100)
        let classes = try #require(record["classes"] as? [[String: Any]])
        #expect(classes.reduce(0) { $0 + ($1["pixels"] as? Int ?? 0) } == plane)
        #expect(classes.allSatisfy { ($0["label"] as? String)?.isEmpty == false })
        // The picture, with the legend on a band below it (it does not fit inside 150x100).
        let overlayImage = try ImageCodec.decode(contentsOf: overlay)
        #expect(overlayImage.width == 150 && overlayImage.height > 100)
    }

    @Test func segmentRefusesBadInputWithOneLine() throws {
        let none = try CLITests.run(["segment", "samples/coffee.jpg"])
        #expect(none.status == 1 && none.stderr.contains("--weights FILE"))
        let detection = CLITests.packageRoot.appendingPathComponent("Tests/EffDenseTests/Fixtures/detection/tf_efficientdet_d0.pth").path
        CLITests.expectOneLineError(try CLITests.run(["segment", "samples/coffee.jpg", "--weights", detection]), naming: detection)
        let wrongEncoder = try CLITests.run(["segment", "samples/coffee.jpg", "--weights", Self.weights, "--encoder", "timm-efficientnet-b0"])
        CLITests.expectOneLineError(wrongEncoder, naming: Self.weights)
        #expect(try CLITests.run(["segment", "samples/coffee.jpg", "--output-stride", "4"]).status == 1)
    }
}

/// Every kind of broken checkpoint: one line on stderr naming the file, exit status 1.
@Suite struct BrokenCheckpointCLITests {
    static let fixtures = CLITests.packageRoot.appendingPathComponent("Tests/EffWeightsTests/Fixtures")

    static func safetensors(_ header: String, dataBytes: Int) -> Data {
        var file = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: Array(header.utf8))
        file.append(Data(count: dataBytes))
        return file
    }

    @Test func eachBrokenKindExitsOneWithOneLine() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = try Data(contentsOf: Self.fixtures.appendingPathComponent("state_f32.safetensors"))
        var headerPastEnd = good
        headerPastEnd.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(good.count).littleEndian) { Data($0) })
        let cases: [(String, Data, String)] = [
            ("truncated.safetensors", good.prefix(good.count / 2), "truncated"),
            ("header.safetensors", headerPastEnd, "header length"),
            ("offsets.safetensors", Self.safetensors(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#, dataBytes: 16), "out of range"),
            ("dtype.safetensors", Self.safetensors(#"{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, dataBytes: 4), "F8_E4M3"),
            ("evil.pth", try Data(contentsOf: Self.fixtures.appendingPathComponent("evil_global.pth")), "posix.system"),
            ("lying.pth", try Data(contentsOf: Self.fixtures.appendingPathComponent("lying_sizes.pth")), "data/0"),
        ]
        for (name, data, word) in cases {
            let path = folder.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: path))
            let result = try CLITests.run(["weights", "inspect", path])
            CLITests.expectOneLineError(result, naming: path)
            #expect(result.stderr.contains(word), "\(name): \(result.stderr)")
        }
    }
}
