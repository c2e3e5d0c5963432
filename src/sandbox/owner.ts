// The owner helpers live in util/ (the cross-process lock needs them too); records keep
// importing them from here.
export { currentOwner, type Owner, ownerAlive } from "../util/owner.js";
