import ArgumentParser
import EffCore
import Foundation

@main
struct EffDenseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "effdense",
        abstract: "Dense prediction on the CPU: EfficientNet backbone, EfficientDet and DeepLabv3+ heads.",
        version: "effdense 0.4.0",
        subcommands: [DetectCommand.self, SegmentCommand.self, ClassifyCommand.self, EvalCommand.self, WeightsCommand.self, BenchCommand.self])

    /// Runs the command line. Every failure — a bad flag, a bad file — ends with one line on
    /// stderr and exit status 1; help and version requests exit 0.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // An interrupt or a termination leaves no half-written file; running out of memory in a
        // tensor allocation ends like any other failure, with one line and status 1.
        AtomicFile.installInterruptCleanup()
        // A picture's line goes out when printed, also into a batch job's log.
        StandardOutput.flushEveryLine()
        TensorMemory.allocationFailure = { bytes in
            AtomicFile.removeFilesInFlight()
            fail("out of memory: could not allocate \(MemoryShortage.text(bytes)) for a tensor (a smaller --size, fewer --batch-size pictures at once, or more memory would do)")
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            if exitCode(for: error) == .success {
                // A help request that nobody typed: ArgumentParser reads `-dash.png` as the
                // short flags -d -a -s -h ..., and -h is help. It is a file name, not a request.
                if let unknown = arguments.prefix(while: { $0 != "--" }).first(where: { $0.hasPrefix("-") && !$0.hasPrefix("--") && $0.count > 2 }),
                   !arguments.contains(where: { ["-h", "--help", "help"].contains($0) }) {
                    fail("unknown option '\(unknown)' (a file whose name starts with '-' is written ./\(unknown) or after --)")
                }
                exit(withError: error)
            }
            fail(Self.message(for: error))
        }
    }

    /// Ends the run with status 1 and `message` on one line of stderr.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("effdense: \(oneLine(message))\n".utf8))
        Foundation.exit(1)
    }

    /// `message` as one line: ArgumentParser's usage and help lines dropped, line breaks and other
    /// control characters (file names may hold them) escaped.
    static func oneLine(_ message: String) -> String {
        let lines = message.split(separator: "\n", omittingEmptySubsequences: false)
            .prefix { !$0.hasPrefix("Usage:") && !$0.hasPrefix("Help:") && !$0.hasPrefix("  See '") }
        let text = lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        return text.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
    }
}

/// Options every compute command shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads for the kernels and OpenBLAS (default: all cores).")
    var threads: Int?

    @Option(help: ArgumentHelp("Number format of the convolutions: f32 (the reference) or bf16 (weights and layer inputs rounded to bfloat16, float32 sums; needs AVX512_BF16, else float32 runs with a note).", valueName: "f32|bf16"))
    var precision: Precision = .float32

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, found \(threads)") }
    }

    func apply() {
        var count = threads
        if let threads, threads > Threading.maximumThreadCount {
            count = Threading.maximumThreadCount
            FileHandle.standardError.write(Data("effdense: --threads \(threads) is more than 4 x the \(Threading.defaultThreadCount) usable cores; using \(Threading.maximumThreadCount)\n".utf8))
        }
        Threading.setThreadCount(count)
        TensorMemory.keepFreedMemory()
        if Precision.use(precision) != precision {
            FileHandle.standardError.write(Data("effdense: --precision bf16: this CPU has no AVX512_BF16; running float32\n".utf8))
        }
    }
}

extension Precision: ExpressibleByArgument {}
