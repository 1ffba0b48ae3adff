import EffCore
@testable import EffWeights
import Foundation
import Testing

/// Reading every checkpoint layout written by torch / safetensors
/// (scripts/make_checkpoint_fixtures.py), tensor for tensor, and refusing broken files.
@Suite struct CheckpointReaderTests {
    struct ExpectedTensor: Decodable { let shape: [Int]; let values: [Double] }

    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: "Tests/EffWeightsTests/Fixtures")
    static func path(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    static let expected: [String: [String: ExpectedTensor]] = {
        guard let data = try? Data(contentsOf: fixtures.appendingPathComponent("expected.json")) else { return [:] }
        return (try? JSONDecoder().decode([String: [String: ExpectedTensor]].self, from: data)) ?? [:]
    }()

    static let goodFiles = ["state_f32.pth", "state_f32_protocol4.pth", "state_f32_legacy.pth", "state_f16.pth",
                            "state_bf16.pth", "train_checkpoint.pth.tar", "model_key.pth", "data_parallel.pth",
                            "state_f32.safetensors", "state_f16.safetensors", "state_bf16.safetensors"]

    @Test(arguments: goodFiles)
    func loadsEveryTensorAsTorchSavedIt(_ name: String) throws {
        let expected = try #require(Self.expected[name], "expected.json has no entry for \(name)")
        let store = try WeightStore(contentsOf: Self.path(name))
        #expect(Set(store.names) == Set(expected.keys))
        for (key, want) in expected {
            let tensor = try store.tensor(key)
            #expect(tensor.shape == want.shape, "\(name) \(key)")
            if store.info(key)?.dtype == .int64 {
                #expect(try store.integers(key).map(Double.init) == want.values, "\(name) \(key)")
            } else {
                // Exact: float32 as stored; float16 / bfloat16 widen to float32 without rounding.
                #expect(tensor.scalars.map(Double.init) == want.values.map { Double(Float($0)) }, "\(name) \(key)")
            }
        }
    }

    @Test func integerTensorsStayExact() throws {
        let store = try WeightStore(contentsOf: Self.path("state_f32.pth"))
        #expect(try store.integers("bn1.num_batches_tracked") == [123_456_789_012])
        #expect(try store.integers("counts") == [-3, -2, -1, 0, 1, 2])
        #expect(store.info("counts")?.dtype == .int32)
    }

    @Test func formatsAreRecognisedByContent() throws {
        #expect(try WeightStore(contentsOf: Self.path("state_f32.pth")).format == .torchZip)
        #expect(try WeightStore(contentsOf: Self.path("state_f32_legacy.pth")).format == .torchLegacy)
        #expect(try WeightStore(contentsOf: Self.path("state_f32.safetensors")).format == .safetensors)
    }

    @Test func trainingCheckpointPrefersEMAWeightsAsTimmDoes() throws {
        let store = try WeightStore(contentsOf: Self.path("train_checkpoint.pth.tar"))
        let plain = try WeightStore(contentsOf: Self.path("state_f32.pth"))
        #expect(try store.tensor("bn1.weight").scalars == plain.tensor("bn1.weight").scalars.map { $0 + 1 })
    }

    @Test func sharedWrapperPrefixesAreDropped() throws {
        let plain = try WeightStore(contentsOf: Self.path("state_f32.pth"))
        let location = try #require(plain.locations["scalar"])
        for names in [["module.model.a", "module.model.b"], ["model.a", "model.b"]] {
            let store = WeightStore(file: "x", format: .torchZip, entries: names.map { ($0, location) })
            #expect(store.names == ["a", "b"])
        }
        let mixed = WeightStore(file: "x", format: .torchZip, entries: [("model.a", location), ("head.b", location)])
        #expect(mixed.names == ["model.a", "head.b"])
    }

    @Test func keyLayoutsOfTheReferenceModelsAreRecognised() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("keys.json"))
        let keys = try JSONDecoder().decode([String: [String]].self, from: data)
        let expected: [String: KeyLayout] = [
            "timm": .timm, "timm_lite": .timm, "effdet": .effdet, "torchvision": .torchvision,
            "smp_deeplabv3plus_lukemelas": .smpDeepLabV3PlusLukemelas, "smp_deeplabv3plus_timm": .smpDeepLabV3PlusTimm,
        ]
        #expect(Set(keys.keys) == Set(expected.keys))
        for (model, layout) in expected {
            #expect(KeyLayout(recognising: keys[model] ?? []) == layout, "\(model)")
        }
        let lukemelas = (keys["smp_deeplabv3plus_lukemelas"] ?? []).filter { $0.hasPrefix("encoder.") }.map { String($0.dropFirst(8)) }
        #expect(KeyLayout(recognising: lukemelas) == .lukemelas)
        #expect(KeyLayout(recognising: ["a.weight"]) == .unknown)
    }

    // MARK: Broken files

    static func expectFailure(_ data: Data, kind: WeightsError.Kind, mentioning words: [String] = [],
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-bad-\(UUID().uuidString).bin")
        try data.write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let store = try WeightStore(contentsOf: url.path)
            for name in store.names { _ = try store.tensor(name) }
            Issue.record("loaded \(store.names.count) tensors instead of failing", sourceLocation: sourceLocation)
        } catch let error as WeightsError {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix(url.path + ": "), "does not name the file: \(error)", sourceLocation: sourceLocation)
            #expect(!error.description.contains("\n"), "not one line: \(error)", sourceLocation: sourceLocation)
            for word in words {
                #expect(error.description.contains(word), "'\(error)' does not mention '\(word)'", sourceLocation: sourceLocation)
            }
        }
    }

    /// A safetensors file from a header (JSON text) and a data section.
    static func safetensors(_ header: String, data: [UInt8]) -> Data {
        var file = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: Array(header.utf8))
        file.append(contentsOf: data)
        return file
    }

    @Test func truncatedFilesAreRefused() throws {
        for name in ["state_f32.pth", "state_f32_legacy.pth", "state_f32.safetensors"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: Self.path(name)))
            for cut in [1, 12, data.count / 3, data.count / 2, data.count - 30, data.count - 1] {
                try Self.expectFailure(data.prefix(cut), kind: .corrupt)
            }
        }
        try Self.expectFailure(Data(), kind: .corrupt, mentioning: ["empty"])
    }

    @Test func safetensorsHeaderLengthPastTheEnd() throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: Self.path("state_f32.safetensors")))
        data.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(data.count).littleEndian) { Data($0) })
        try Self.expectFailure(data, kind: .corrupt, mentioning: ["header length", "past the end"])
        data.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64.max.littleEndian) { Data($0) })
        try Self.expectFailure(data, kind: .corrupt, mentioning: ["header length"])
    }

    @Test func safetensorsOffsetsOutOfRange() throws {
        let sixteen = [UInt8](repeating: 0, count: 16)
        try Self.expectFailure(Self.safetensors(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#, data: sixteen),
                               kind: .corrupt, mentioning: ["'w'", "out of range"])
        try Self.expectFailure(Self.safetensors(#"{"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#, data: sixteen),
                               kind: .corrupt, mentioning: ["'w'", "shape [5]"])
        try Self.expectFailure(Self.safetensors(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, data: sixteen),
                               kind: .corrupt, mentioning: ["overlap"])
        try Self.expectFailure(Self.safetensors(#"{"w":{"dtype":"F32","shape":[4]}}"#, data: sixteen), kind: .corrupt)
        try Self.expectFailure(Self.safetensors(#"{"w": not json"#, data: sixteen), kind: .corrupt, mentioning: ["JSON"])
        // The same layout with correct offsets loads.
        let good = Self.safetensors(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, data: sixteen)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-good-\(UUID().uuidString).safetensors")
        try good.write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(try WeightStore(contentsOf: url.path).tensor("w").shape == [2, 2])
    }

    @Test func unknownDTypeIsRefused() throws {
        try Self.expectFailure(Self.safetensors(#"{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
                               kind: .unsupportedDType, mentioning: ["'w'", "F8_E4M3"])
    }

    @Test func pickleNamingADisallowedGlobalIsRefusedWithoutRunningIt() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.path("evil_global.pth")))
        try Self.expectFailure(data, kind: .disallowedGlobal, mentioning: ["posix.system", "not allowed"])
    }

    @Test func zipWhoseEntrySizesLieIsRefused() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.path("lying_sizes.pth")))
        try Self.expectFailure(data, kind: .corrupt, mentioning: ["data/0"])
    }

    /// Inputs that crashed a reader once — found by the fuzzer (scripts/fuzz.sh) or made by
    /// scripts/make_fuzz_seeds.py (deep nesting) — replayed the way the fuzz target reads them:
    /// open, then every tensor as floats and as integers. Each must end in values or a
    /// WeightsError; a crash here takes the whole test process down.
    @Test func fuzzerFindingsAreHandledCleanly() throws {
        let folder = Self.fixtures.appendingPathComponent("fuzz")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(files.count >= 4)
        for file in files {
            let path = folder.appendingPathComponent(file).path
            guard let store = try? WeightStore(contentsOf: path) else {
                #expect(throws: WeightsError.self, "\(file)") { try WeightStore(contentsOf: path) }
                continue
            }
            for info in store.infos {
                _ = try? store.tensor(info.name)
                _ = try? store.integers(info.name)
            }
        }
        // Deep nesting is refused by name.
        #expect(throws: WeightsError.self) { try WeightStore(contentsOf: folder.appendingPathComponent("nested_300000_tuples_legacy.pth").path) }
    }

    @Test func notACheckpointIsRefused() throws {
        try Self.expectFailure(Data("hello, not weights".utf8), kind: .unknownFormat)
        #expect(throws: WeightsError(.unreadable, "/no/such/file.pth", "no such file")) {
            try WeightStore(contentsOf: "/no/such/file.pth")
        }
    }

    // MARK: Strict binding

    @Test func binderDemandsEveryKeyWithItsShapeAndNothingElse() throws {
        let store = try WeightStore(contentsOf: Self.path("state_f32.pth"))
        let binder = WeightBinder(store)
        #expect(throws: WeightsError(.missingKey, store.file, "missing key 'conv_head.weight' (expected shape [8, 4, 1, 1]); the file's key layout is unrecognised")) {
            try binder.tensor("conv_head.weight", shape: [8, 4, 1, 1])
        }
        #expect(throws: WeightsError(.shapeMismatch, store.file, "key 'conv_stem.weight' has shape [4, 3, 3, 3], the model expects [8, 3, 3, 3]")) {
            try binder.tensor("conv_stem.weight", shape: [8, 3, 3, 3])
        }
        _ = try binder.tensor("conv_stem.weight", shape: [4, 3, 3, 3])
        do {
            try binder.finish()
            Issue.record("finish() accepted unused keys")
        } catch let error as WeightsError {
            #expect(error.kind == .unusedKeys)
            #expect(error.problem.hasPrefix("8 unexpected keys"))
            #expect(!error.problem.contains("num_batches_tracked"))
            #expect(error.problem.contains("classifier.weight"))
        }
        for info in store.infos where info.name != "conv_stem.weight" && !info.name.hasSuffix("num_batches_tracked") {
            _ = try binder.tensor(info.name, shape: info.shape)
        }
        try binder.finish()
    }

    // MARK: Conversion

    @Test func convertWritesSafetensorsThatReadBackEqual() throws {
        let source = try WeightStore(contentsOf: Self.path("state_f32_legacy.pth"))
        for half in [false, true] {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-conv-\(UUID().uuidString).safetensors")
            defer { try? FileManager.default.removeItem(at: url) }
            try Safetensors.write(source, to: url.path, halfPrecision: half)
            let converted = try WeightStore(contentsOf: url.path)
            #expect(Set(converted.names) == Set(source.names))
            for name in source.names {
                let want = try source.tensor(name)
                if source.info(name)?.dtype.isFloatingPoint == true {
                    #expect(converted.info(name)?.dtype == (half ? .float16 : .float32))
                    #expect(try converted.tensor(name).scalars == want.scalars.map { half ? Float(Float16($0)) : $0 }, "\(name)")
                } else {
                    #expect(try converted.integers(name) == source.integers(name), "\(name)")
                }
            }
        }
    }
}
