import EffImage
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Flag values and pictures that ask for more memory or threads than the process may have end
/// with one line and exit status 1 (or a note and a smaller pool) within seconds, under the
/// same limits as the hostile probe: `prlimit` for memory and processes, `setpriv` to an
/// unprivileged user where root would bypass the process limit.
@Suite struct ResourceLimitTests {
    static func run(_ wrapper: [String], _ arguments: [String]) throws -> CLITests.Result {
        try HostileCheckpointTests.run(wrappedIn: wrapper + ["timeout", "-k", "5", "60"], arguments)
    }

    /// A folder for pictures made here, readable by the unprivileged user.
    static func folder() throws -> URL {
        let folder = try CLITests.temporaryFolder()
        chmod(folder.path, 0o755)
        return folder
    }

    @Test func cropPercentageOutOfRangeIsRefused() throws {
        let result = try Self.run(["prlimit", "--as=12000000000"], ["classify", "samples/coffee.jpg", "--weights", CLITests.realLite0, "--crop-pct", "0.0000001"])
        CLITests.expectOneLineError(result, naming: "--crop-pct")
    }

    /// The resize before the crop is bounded like a decoded picture: a 1 x 3000 strip at crop
    /// 0.1 would be resized to 2240 x 6,720,000.
    @Test func resizeTargetIsBounded() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let strip = folder.appendingPathComponent("strip.png").path
        try ImageCodec.writePNG(pixels: [UInt8](repeating: 90, count: 3000), width: 1, height: 3000, format: .gray, to: strip)
        let result = try Self.run(["prlimit", "--as=4000000000"], ["classify", strip, "--weights", CLITests.realLite0, "--crop-pct", "0.1"])
        CLITests.expectOneLineError(result, naming: strip)
        #expect(result.stderr.contains("more than 100000000 pixels"), "\(result.stderr)")
    }

    @Test func segmentSizeBeyondThePictureLimitIsRefused() throws {
        let result = try Self.run(["prlimit", "--as=12000000000"], ["segment", "samples/chelsea.png", "--weights", SegmentCLITests.weights, "--size", "100000", "-o", "/tmp/never.png"])
        CLITests.expectOneLineError(result, naming: "--size")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never.png"))
    }

    /// A legal 9000 x 9000 picture (81 MP, under the 100 MP limit) under a 16 GB address-space
    /// limit: refused up front by the memory estimate, with the size that would fit; a smaller
    /// picture upscaled by --size past the limit likewise.
    @Test func wholePictureSegmentationBeyondMemoryIsRefusedUpFront() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let big = folder.appendingPathComponent("big.png").path
        let side = 9000
        var pixels = [UInt8](repeating: 0, count: side * side)
        for y in 0..<side { for x in stride(from: 0, to: side, by: 1) { pixels[y * side + x] = UInt8((x / 64 + y / 64) % 2 * 200) } }
        try ImageCodec.writePNG(pixels: pixels, width: side, height: side, format: .gray, to: big)
        pixels = []
        let mask = folder.appendingPathComponent("big.mask.png").path
        let start = Date()
        let result = try Self.run(["prlimit", "--as=16000000000"], ["segment", big, "--weights", SegmentCLITests.weights, "-o", mask])
        CLITests.expectOneLineError(result, naming: big)
        #expect(result.stderr.contains("needs about") && result.stderr.contains("pass --tile 1024") && result.stderr.contains("or --size"), "\(result.stderr)")
        #expect(Date().timeIntervalSince(start) < 20, "took \(Date().timeIntervalSince(start)) s")
        #expect(!FileManager.default.fileExists(atPath: mask))
        // The size it suggests does run (on a smaller picture, to keep the test short: 2000 x 2000 at
        // --size 6000 is refused the same way, and at the suggested size it works).
        let small = folder.appendingPathComponent("small.png").path
        try ImageCodec.writePNG(pixels: [UInt8](repeating: 120, count: 2000 * 2000), width: 2000, height: 2000, format: .gray, to: small)
        let upscaled = try Self.run(["prlimit", "--as=3000000000"], ["segment", small, "--weights", SegmentCLITests.weights, "--size", "6000", "-o", mask])
        CLITests.expectOneLineError(upscaled, naming: small)
        let suggested = try #require(upscaled.stderr.components(separatedBy: "or --size ").last?.split(separator: " ").first.flatMap { Int($0) },
                                     "\(upscaled.stderr)")
        let fits = try Self.run(["prlimit", "--as=3000000000"], ["segment", small, "--weights", SegmentCLITests.weights, "--size", "\(min(suggested, 1024))", "-o", mask])
        #expect(fits.status == 0, "\(fits.stderr)")
        #expect(FileManager.default.fileExists(atPath: mask))
    }

    /// `--threads 300` under a limit of 256 processes (as an unprivileged user: root is not held
    /// to it) and `--threads 100000`: capped with a note, the run completes.
    @Test(arguments: ["300", "100000"])
    func threadCountsBeyondTheLimitsAreCapped(threads: String) throws {
        let unprivileged = getuid() == 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        let result = try Self.run(unprivileged + ["prlimit", "--nproc=256"],
                                  ["classify", "samples/coffee.jpg", "--weights", CLITests.realLite0, "--threads", threads, "--json", "-"])
        #expect(result.status == 0, "status \(result.status): \(result.stderr)")
        #expect(result.stderr.contains("--threads \(threads) is more than 4 x the"), "\(result.stderr)")
        #expect(result.stdout.contains("\"predictions\""))
    }
}
