//! The migrations in sql/ are embedded when this crate compiles (src/db.rs,
//! `embed_migrations!`): without this, adding or changing a migration left the binaries with
//! the old set until some source file of the crate changed.
fn main() {
    println!("cargo:rerun-if-changed=../../sql");
}
