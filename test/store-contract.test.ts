import { mkdir, rm } from 'node:fs/promises';
import {
  DirSync,
  LocalBlobStore,
  LocalMetadataStore,
  MetaDb,
  storeLayout,
  type StoreLayout,
} from '@filetracker/server';
import { blobStoreContract } from './contract/blob-store.js';
import { metadataStoreContract } from './contract/metadata-store.js';
import { tempDir } from './helpers/server.js';

/** The directories of a new local store, in a temp dir of its own. */
async function localLayout(): Promise<StoreLayout> {
  const layout = storeLayout(await tempDir('ft-contract-'));
  await Promise.all([layout.blobs, layout.links, layout.tmp].map((d) => mkdir(d)));
  return layout;
}

blobStoreContract('local disk (blobs/)', async () => {
  const layout = await localLayout();
  return {
    blobs: new LocalBlobStore(layout, new DirSync()),
    close: () => rm(layout.root, { recursive: true, force: true }),
  };
});

metadataStoreContract('local (links/ + meta/ LevelDB)', async () => {
  const layout = await localLayout();
  const dirs = new DirSync();
  const blobs = new LocalBlobStore(layout, dirs);
  const metadata = new LocalMetadataStore(layout, await MetaDb.open(layout.meta), dirs, blobs);
  return {
    metadata,
    blobs,
    close: async () => {
      await metadata.close();
      await rm(layout.root, { recursive: true, force: true });
    },
  };
});
