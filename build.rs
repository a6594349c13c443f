//! `sqlx::migrate!` embeds the `migrations/` folder at compile time, and cargo does not
//! watch that folder on its own: without this, a new migration could be left out of a build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
