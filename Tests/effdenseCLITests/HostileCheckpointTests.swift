import EffCore
import EffWeights
import Foundation
import Testing

/// Hand-made hostile checkpoints (scripts/make_hostile_fixtures.py) that once hung effdense or
/// killed it with a signal: each now ends with exit status 1 and one line naming the file.
@Suite struct HostileCheckpointTests {
    static let hostile = CLITests.packageRoot.appendingPathComponent("Tests/EffWeightsTests/Fixtures/hostile")
    static func fixture(_ name: String) -> String { hostile.appendingPathComponent(name).path }

    /// Runs effdense under `wrapper` (e.g. `timeout 5`, `prlimit --as=...`).
    static func run(wrappedIn wrapper: [String], _ arguments: [String]) throws -> CLITests.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = wrapper + [CLITests.binary.path] + arguments
        process.currentDirectoryURL = CLITests.packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLITests.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                               stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// 1. Pickles of 300,000 one-item ADDITEMS / APPENDS / SETITEMS are read in linear time:
    /// refused (no tensors) well within 5 seconds.
    @Test(arguments: ["quadratic_additems.pth", "quadratic_appends.pth", "quadratic_setitems.pth"])
    func quadraticPickleIsReadInLinearTime(name: String) throws {
        let file = Self.fixture(name)
        let result = try Self.run(wrappedIn: ["timeout", "-k", "2", "5"], ["weights", "inspect", file])
        #expect(result.status != 124, "weights inspect took over 5 s on \(name)")
        CLITests.expectOneLineError(result, naming: file)
        #expect(result.stderr.contains("no dictionary of tensors") || result.stderr.contains("no tensors found"), "\(result.stderr)")
    }

    /// 2. Zip entries that inflate to 3 GB, under a 2 GB address-space limit: the pickle is refused
    /// by its declared size, the storage's allocation failure is an error, and an entry that
    /// inflates past its header's size is stopped at that size.
    @Test(arguments: [("inflate_pickle_3gb.pth", "over the 256 MB limit"),
                      ("inflate_storage_3gb.pth", "cannot allocate"),
                      ("inflate_storage_lying.pth", "holds more than the 16 bytes its header says")])
    func inflatingEntriesUnderAnAddressSpaceLimit(name: String, message: String) throws {
        let file = Self.fixture(name)
        for command in [["weights", "inspect", file], ["classify", "samples/coffee.jpg", "--weights", file]] {
            let result = try Self.run(wrappedIn: ["prlimit", "--as=2000000000", "timeout", "-k", "5", "60"], command)
            CLITests.expectOneLineError(result, naming: file)
            #expect(result.stderr.contains(message), "\(command): \(result.stderr)")
        }
    }

    /// 3. A zero dimension does not hide the overflow of the others, in safetensors and in pickles,
    /// for every command that reads weights; `[4.7]` is not a shape.
    @Test(arguments: ["zero_dims.safetensors", "zero_dims.pth"])
    func zeroSizedTensorWithHugeDimensionsIsRefused(name: String) throws {
        let file = Self.fixture(name)
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let commands = [
            ["weights", "inspect", file], ["weights", "inspect", "--json", file],
            ["weights", "convert", file, folder.appendingPathComponent("out.safetensors").path],
            ["classify", "samples/coffee.jpg", "--weights", file],
            ["detect", "samples/coffee.jpg", "--weights", file, "--no-images"],
            ["segment", "samples/coffee.jpg", "--weights", file, "-o", folder.appendingPathComponent("m.png").path],
        ]
        for command in commands {
            let result = try CLITests.run(command)
            CLITests.expectOneLineError(result, naming: file)
            #expect(result.stderr.contains("impossible shape [0, 1099511627776, 1099511627776]"), "\(command): \(result.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty, "a failed run left files behind")
    }

    @Test func fractionalShapeIsRefused() throws {
        let file = Self.fixture("fractional_shape.safetensors")
        let result = try CLITests.run(["weights", "inspect", file])
        CLITests.expectOneLineError(result, naming: file)
        #expect(result.stderr.contains("whole numbers"))
    }

    /// 4. Non-finite parameters are refused when the tensor is loaded, naming it (the documented
    /// choice): a detector whose box-head bias is NaN or +inf, and the small hand-made file.
    @Test(arguments: [Float.nan, Float.infinity, -Float.infinity])
    func detectorWithNonFiniteBoxBiasIsRefused(value: Float) throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try WeightStore(contentsOf: DetectCLITests.weights)
        let poisoned = "box_net.predict.conv_pw.bias"
        let tensors: [(String, Safetensors.Values)] = try store.infos.map { info in
            guard info.dtype.isFloatingPoint else { return (info.name, .integers(try store.integers(info.name), shape: info.shape)) }
            var tensor = try store.tensor(info.name)
            if info.name == poisoned { tensor.withUnsafeMutableBufferPointer { $0[1] = value } }
            return (info.name, .float(tensor))
        }
        let file = folder.appendingPathComponent("d0_nonfinite.safetensors").path
        try Safetensors.write(tensors, to: file)
        let json = folder.appendingPathComponent("out.jsonl").path
        let result = try CLITests.run(["detect", "samples/coffee.jpg", "--weights", file, "--json", json,
                                       "-o", folder.appendingPathComponent("out.png").path])
        CLITests.expectOneLineError(result, naming: file)
        #expect(result.stderr.contains("tensor '\(poisoned)' holds \(value.isNaN ? "NaN" : value > 0 ? "+inf" : "-inf")"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: json) && !FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.png").path))

        let small = Self.fixture("nonfinite.safetensors")
        let converted = try CLITests.run(["weights", "convert", small, folder.appendingPathComponent("c.safetensors").path])
        CLITests.expectOneLineError(converted, naming: small)
        #expect(converted.stderr.contains("tensor 'conv.weight' holds NaN (element 5 of [2, 4])"), "\(converted.stderr)")
    }
}
