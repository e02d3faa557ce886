fn main() {
    println!("denwa");
}
