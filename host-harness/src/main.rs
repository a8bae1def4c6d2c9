fn main() {
    eprintln!("gmm: not implemented yet");
    std::process::exit(2);
}
