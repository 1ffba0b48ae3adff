import ArgumentParser

extension WeightsCommand {
    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download an official checkpoint into the cache.")
        @Argument var name: String
        func run() throws {}
    }
}
