import ArgumentParser
import EffCore
import Foundation

@main
struct EffDenseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "effdense",
        abstract: "Dense prediction on the CPU: EfficientNet backbone, EfficientDet and DeepLabv3+ heads.",
        subcommands: [DetectCommand.self, SegmentCommand.self, ClassifyCommand.self, WeightsCommand.self, BenchCommand.self])

    /// Runs the command line. Every failure — a bad flag, a bad file — ends with one line on
    /// stderr and exit status 1; help and version requests exit 0.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            let message = Self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("effdense: \(message)\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// Options every compute command shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads for the kernels and OpenBLAS (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, found \(threads)") }
    }

    func apply() {
        Threading.setThreadCount(threads)
        TensorMemory.keepFreedMemory()
    }
}
