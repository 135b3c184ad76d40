/// A command line the user got wrong: what was wrong, naming the argument and the form that is
/// accepted. Printed on stderr as two lines, the problem and where the full usage is; every command
/// of both binaries exits 2 with it (`randsnat doctor`, whose 2 means "problem", exits 3).
public struct UsageError: Error, Equatable, Sendable, CustomStringConvertible {
    public let problem: String

    public init(_ problem: String) { self.problem = problem }

    /// An argument the command does not take.
    public static func unknown(_ argument: String, accepted: [String]) -> UsageError {
        UsageError("unknown argument \(quoted(argument)); the options are " + accepted.joined(separator: ", "))
    }

    /// An option given last, without the value it takes.
    public static func missingValue(_ option: String, form: String) -> UsageError {
        UsageError("\(option) needs a value: \(form)")
    }

    /// An option's value that is not of the accepted form.
    public static func badValue(_ option: String, _ value: String, expected: String) -> UsageError {
        UsageError("\(option) \(quoted(value)): expected \(expected)")
    }

    public var description: String { problem }

    /// What the command prints on stderr.
    public func message(command: String) -> String {
        "\(command): \(problem)\nrun '\(command) --help' for usage\n"
    }

    /// True when the arguments ask for help (`--help` or `-h` anywhere).
    public static func asksForHelp(_ arguments: [String]) -> Bool {
        arguments.contains("--help") || arguments.contains("-h")
    }

    /// An argument as the user typed it; quoted when empty or holding spaces, so it can be seen.
    public static func quoted(_ text: String) -> String {
        text.isEmpty || text.contains(" ") ? "\"\(text)\"" : text
    }
}
