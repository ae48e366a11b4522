//! Dev tool (not committed): dump a session's events and extracted commands.
use storage_schema::Keyring;
use storage_schema::store::{SessionReader, Store, list_sessions};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = Store::open(&args[1]).unwrap();
    let ring = Keyring::open(std::path::Path::new(&args[2])).unwrap();
    let id = match args.get(3) {
        Some(s) => s.parse().unwrap(),
        None => list_sessions(&store).await.unwrap()[0],
    };
    let reader = SessionReader::open(&store, &ring, id).await.unwrap();
    let mut events = Vec::new();
    reader
        .for_each_event(|e| events.push(e.clone()))
        .await
        .unwrap();
    for e in &events {
        match &e.kind {
            storage_schema::EventKind::Data { stream, bytes } => {
                println!("{} {stream:?} {}", e.at_us, bytes.escape_ascii())
            }
            other => println!("{} {other:?}", e.at_us),
        }
    }
    println!(
        "---- meta size {:?} command {:?}",
        reader.meta().size,
        reader.meta().command
    );
    for c in transcript::extract(reader.meta(), &events) {
        println!("{c:?}");
    }
}
