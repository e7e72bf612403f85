//! `sqlx::migrate!` embeds `migrations/` when the crate compiles, and cargo does not know the macro reads that
//! folder: without this, a commit that only adds a migration builds a binary without it (sqlx's documented fix, as
//! `sqlx migrate build-script` writes it).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
