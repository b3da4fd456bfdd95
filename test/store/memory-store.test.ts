import { storeContract } from './contract.js';

storeContract('memory');
